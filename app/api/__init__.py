"""The service's ways in: the HTTP routers of the domains, the MQTT consumer and the offline timer.

Each one parses what arrives, owns its transaction (commits before it answers: acknowledged
means committed), and calls a domain service or, for a write that ripples down the pipeline
(readings → alarms → scores), a flow of :mod:`app.flows`. They sit above every domain, so no
domain imports them. Vector tiles, OGC API and the pages are served by :mod:`app.tiles`,
:mod:`app.ogc` and :mod:`app.maps`.
"""
