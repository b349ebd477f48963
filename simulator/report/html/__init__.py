"""The HTML report (``llmsim report --html``) and the views ``llmsim ui`` serves: one data
gatherer (data.py, from the library's own API), one figure builder (figures.py: Plotly
figure specs as plain JSON) and one renderer in the browser (static/views.js), shared by
the self-contained file and the local web app. Plotly's JavaScript comes from the
installed ``plotly`` package (the ``report`` extra); nothing is fetched from the network.
"""
