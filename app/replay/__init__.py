"""Replay: realistic readings for the sensors in the database, with scripted incidents.

The demo's live feed, and a load generator: a **client** of the service (it reads sensors from
the database and publishes readings over HTTP or MQTT), not part of it.

``cityrisk replay SCENARIO`` reads the active sensors (id, external id, indicator, interval,
binding, position) and publishes one reading per sensor per interval, either as NDJSON to
``POST {url}/readings`` or as NDJSON messages with QoS 1 on MQTT topic
``cityrisk/readings/<indicator>``. Scenarios: ``gas-leak``, ``water-burst``, ``bridge-strain``,
``flood-rain`` and ``demo`` (all four, staggered); the ground truth (what happens, where, when,
to which sensors, and the values to expect) can be written as JSON.

Time
----
Simulated time starts at ``start`` and runs ``speed`` times as fast as the wall clock
(``speed = 0``: as fast as possible). The readings of a batch of ``batch_s`` simulated seconds are
sent once simulated time has passed the batch's end, as a gateway would. The ingest refuses
readings stamped more than 5 min after its own clock (``ingest.MAX_FUTURE``), so a replay faster
than real time must run in the past: the default ``start`` is *now* at ``speed = 1`` (live), and
*now − duration* at any other speed, so that simulated time reaches *now* when the replay ends
(at ``speed > 1`` it ends after ``duration / speed`` of wall time, ahead of nothing). Whatever
the options, a batch is never sent while its end is more than 4 min ahead of the wall clock (one
minute of margin for clock skew): a replay that would get further ahead waits, i.e. it is slowed
to the wall clock from there on, and ``speed = 0`` with an explicit ``start`` whose end is
in the future is refused. The replay sets no age limit of its own: a ``start`` older than
the service's ``CITYRISK_MAX_READING_AGE_DAYS`` gives readings it rejects (counted, with the
reason, in the summary).

Values
------
Each indicator has a baseline with a daily cycle in *local solar time* (UTC + longitude / 15 h,
within about an hour of civil time, and needing no time zone setting): gas pressure dips at meal
times, water pressure is lowest in the morning peak and flow follows demand (night minimum),
people counts follow the rush hours, bridge strain and deflection follow the daily temperature
sine, ambient pipe noise is higher by day. Methane is 0–2 %LEL background. Noise is Gaussian.

Determinism: every random number is a pure function of (seed, sensor external id, timestamp),
from a counter-based hash (SplitMix64), not of a generator's state. The same seed gives the same
value for a sensor at an instant whatever the batch size, speed, target or start, and replaying
the same span twice sends identical readings (the ingest stores them once). A sensor's reporting
phase within its interval comes from its external id alone. Incident choices (which main, which
bridge…) come from ``numpy.random.default_rng(seed)`` over candidates sorted by id.

Generation is vectorised per batch: one numpy pass computes every reading of every sensor due in
the batch (indices, timestamps, baselines, incident effects, noise) and builds the NDJSON lines
with numpy string operations; nothing loops per reading in Python.

Modules: :mod:`~app.replay.model` (time, random numbers, baselines), :mod:`~app.replay.fleet`
(the sensors), :mod:`~app.replay.scenarios` (incidents, truth), :mod:`~app.replay.readings`
(generation), :mod:`~app.replay.sinks` (HTTP, MQTT), :mod:`~app.replay.run` (pacing, the
command).
"""
