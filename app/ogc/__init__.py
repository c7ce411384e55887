"""OGC API Features (Part 1 Core, GeoJSON, HTML, OAS 3.0; Part 3 CQL2 filtering) over assets.

``routes.router`` (prefix ``/ogc``) serves one collection per asset kind plus ``exposure``;
``catalog`` derives them from the taxonomy, ``params`` parses query parameters, ``cql`` turns
CQL2 filters into SQL, ``service`` runs the queries and ``documents`` shapes the responses.
"""
