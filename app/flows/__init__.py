"""Cross-domain flows: the writes that ripple down the pipeline, in one place.

Data flows one way — ingest → join → warn → score → impact → serve — and no domain imports a
later one: ingest does not know the rules engine, the alarm lifecycle does not know scoring.
What chains them is here, called by the ways in (:mod:`app.api`, the CLI):

- :mod:`app.flows.readings`: a batch of readings is stored, judged by the rules, and the assets
  of the alarms it moved are rescored, in one transaction;
- :mod:`app.flows.alarms`: an analyst's transition, or the offline check, and the rescore;
- :mod:`app.flows.assets`: an import of assets, and the refresh that keeps scores current;
- :mod:`app.flows.demo`: the demo city: assets, links, sensors, scores.

Each flow flushes and never commits: the caller owns the transaction.
"""
