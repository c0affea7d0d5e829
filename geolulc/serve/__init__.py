"""`geolulc serve`: the classifier and the mapper behind an HTTP API, with a map page.

An optional part (``pip install 'geolulc[serve]'``): nothing here is imported by the rest of
geolulc, by ``geolulc --help`` or by a plain ``geolulc map``.
"""
