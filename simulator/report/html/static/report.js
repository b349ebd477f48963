// The self-contained report: render the view inlined beside this script.
"use strict";
LlmsimViews.render(document.getElementById("report"),
                   JSON.parse(document.getElementById("llmsim-view").textContent));
