"""``llmsim ui``: a local web app (Flask, the ``web`` extra) over the same views as the HTML
report, and a JSON API whose answers are the CLI's own outputs: the query's parameters
become the command's options (arguments.py), the command's handler answers, and bad input
is HTTP 400 with the one line the CLI prints. Uploaded specs are parsed as data by the
registry (YAML/JSON, never executed), size-capped, kept in a private temporary folder
(uploads.py) and named by a token; the API takes built-in names and tokens, never paths.
"""
