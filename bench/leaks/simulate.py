"""A leak benchmark with known onsets: WNTR leaks on the real KY4 network, pressure readings out.

Usage: .venv/bin/python bench/leaks/simulate.py [--seed 13] [--days 70] [--calibration-days 42]
          [--sensors 24] [--solver wntr|epanet-emitter] [--out .data/bench/leaks] [--force]

What it makes (under ``--out``/``ky4-s<seed>-d<days>/``, cached: a second call with the same
parameters reuses it; ``--force`` rebuilds)
---------------------------------------------------------------------------------------------
- ``pipes.geojson`` (``water_pipe``, the model's 1,156 pipes with their surveyed vertices),
  ``pumps.geojson`` (``pump_station``, a point at each pump link's midpoint), ``sensors.geojson``
  (``pressure_mpa`` recorders at junctions, bound explicitly to an adjacent pipe), all EPSG:4326,
  in the formats ``cityrisk import`` / ``cityrisk import-sensors`` read. ``junctions.geojson``,
  ``tanks.geojson`` and ``reservoirs.geojson`` are written too, for maps and localisation; cityrisk
  has no asset kind for a network node, so they are not imported. KY4 has no valves.
- ``readings.csv``: the wire format (``sensor,ts,value``; RFC 3339 UTC; MPa), one reading per
  sensor every 5 minutes.
- ``leaks.csv``: the schedule — pipe id, onset, end, leak area, the simulated leak flow (mean over
  the window) and its share of the mean system demand, lon/lat of the pipe's midpoint, and the
  signal: the largest noise-free drop it causes at a sensor in its first hour (m), which sensor,
  and that sensor's noise σ (m).
- ``pressure_true_m.csv.gz``: the sensors' simulated pressures (m) before offset, noise and
  quantisation (for checking a detector, never for calibrating one).
- ``manifest.json``: every parameter and where its number comes from.

How it is made
--------------
Network: ``KY4`` of the Kentucky research networks (Jolly et al. 2014, as distributed with WNTR,
BSD; ``../shared/datasets/water_networks/ky4.inp`` + ``ky4_network.gpkg``), 959 junctions, 1,156
pipes, 4 tanks, 1 reservoir, 2 pumps, mean base demand 65.7 L/s. Its coordinates are real: the
GeoPackage is in EPSG:3547 (NAD83(NSRS2007) / Kentucky Single Zone, US survey feet), the pipe
geometries' lengths agree with the model's pipe lengths within 0.3 % (5th–95th percentile), and the
USGS elevation raster of the same area (``wntr_gis/ky4_elevation.tif``) sampled at the junctions
agrees with the model's junction elevations (r = 0.992, median |difference| 0.75 m). KY10 has real
coordinates too (EPSG:3089), but its model gives pressures down to −142 m in a plain run.

Hydraulics: WNTR's own solver (``WNTRSimulator``, demand-driven; EPANET's solver in WNTR does not
model ``add_leak``), 5-minute hydraulic and report steps, the model's controls (pump 1 on tank T-3's
level): ≈ 15 CPU minutes for 70 days. ``--solver epanet-emitter`` runs EPANET 2.2 through its
toolkit instead, each leak an emitter (exponent 0.5, C = Cd·A·√(2g): the same orifice law) switched
on and off at its times, ≈ 1 CPU minute. On a 7-day run with two leaks the two agree: leak flows
within 0.001 L/s, sensor pressures median |difference| 2 mm, 99th percentile 8 mm, largest 1.5 m
(a pump switching one step apart; 0.1 % of readings differ by more than one noise σ).

Demands: the model's hourly pattern, interpolated linearly to 5 minutes, times one system-wide
multiplier ``weekday/weekend factor × day factor × exp(AR(1) noise)`` whose numbers are
measured by :func:`demand_noise` on real hourly inflows (BWDF DMA 5, ``tests/data/bwdf``, MIT; a
62.6 L/s district, the size of KY4).

Sensors: a 12-bit line-pressure recorder as sold for distribution networks (Telog LPR-31:
range 100 psi or 200 psi, accuracy ±0.25 % of full scale at constant temperature, resolution
0.025 % of full scale; trimblewater.com/telog-lpr31i). Each sensor gets the 100 psi range unless
its simulated pressure ever exceeds 90 % of it (then 200 psi), a fixed offset drawn uniformly
within ±0.25 % FS (its calibration error), white noise σ = 0.05 % FS (two resolution steps:
**assumed**, the datasheet states accuracy and resolution, not noise) and quantisation to 0.025 %
FS. Placement: ``--sensors`` junctions chosen by greedy farthest-point sampling on the pipe
network (shortest paths weighted by pipe length), starting from the junction farthest from the
reservoir, among junctions whose leak-free pressure never falls below 10 m.

Leaks: after ``--calibration-days`` leak-free days, a schedule of abrupt leaks until one day before
the end: gaps 18–42 h (uniform), durations 12–48 h (uniform), onsets on 5-minute steps; target
leak flows 2–10 % of the mean system demand, log-spaced and shuffled. Each on a different pipe
(length ≥ 30 m, drawn with probability ∝ length, leak-free pressure ≥ 15 m at both ends), split at
its midpoint (``wntr.morph.split_pipe``) with ``add_leak`` on the new junction: Q = Cd·A·√(2 g p),
Cd = 0.75 (WNTR's default), area A from the target flow and the pipe's mean leak-free pressure over
the window (what the simulation then gives is recorded, not the target).

Dates: the data ends at ``--end`` (default: yesterday 05:00 UTC = local midnight of Kentucky's
Eastern Standard Time, UTC−5, the model's clock; it ignores daylight saving time, so the demand
cycle does not move by an hour when a real town's would) so ingest, which refuses readings older
than 400 days, accepts it; the cache keeps the dates it was made with (a cache older than ~300
days is rebuilt by ``warning_eval.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import shapely
from scipy.signal import lfilter  # scipy comes with wntr

F64 = npt.NDArray[np.float64]

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"
BWDF = ROOT / "tests" / "data" / "bwdf" / "inflow_2021_09_10.csv"
STEP_S = 300  # hydraulic, pattern and report step
DAY_S = 86_400
UTC_OFFSET_S = -5 * 3600  # the model's clock: Eastern Standard Time
G = 9.80665  # m/s²
M_HEAD_TO_MPA = 0.00980665  # 1 m of water head in MPa
PSI_TO_M = 0.703070  # 1 psi in m of water head (6.894757 kPa / 9.80665 kPa per m)
DISCHARGE_COEFF = 0.75  # WNTR's add_leak default
# Telog LPR-31 (trimblewater.com/telog-lpr31i): ranges 100 / 200 psi, ±0.25 % FS, 0.025 % FS.
RANGES_PSI = (100.0, 200.0)
ACCURACY_FS = 0.0025
RESOLUTION_FS = 0.00025
NOISE_FS = 0.0005  # assumed: two resolution steps
LEAK_SHARE = (0.02, 0.10)
GAP_H = (18.0, 42.0)
DURATION_H = (12.0, 48.0)
MIN_LEAK_PIPE_M = 30.0
MIN_LEAK_PRESSURE_M = 15.0
MIN_SENSOR_PRESSURE_M = 10.0


@dataclass(frozen=True)
class DemandNoise:
    """System demand variation, measured on real district inflows (dimensionless)."""

    weekend_factor: float  # mean weekend day / mean weekday
    day_sigma: float  # σ of log(daily mean / median of its day type)
    hour_sigma: float  # σ of the hourly log residual after the day's mean and the hour's shape
    hour_lag1: float  # lag-1 (1 h) autocorrelation of that residual
    source: str


@dataclass(frozen=True)
class Leak:
    """One scheduled leak (times in seconds from the simulation start)."""

    leak_id: str
    pipe: str
    junction: str  # the split junction that leaks (simulation only)
    start_s: int
    end_s: int
    area_m2: float
    target_share: float


def demand_noise(path: Path = BWDF, column: str = "dma_5_l_s") -> DemandNoise:
    """Measure the day-to-day and hour-to-hour variation of a real district's inflow.

    Parameters
    ----------
    path
        ``tests/data/bwdf/inflow_2021_09_10.csv`` (hourly L/s, local time column ``local_cest``).
    column
        The district; DMA 5 (mean 62.6 L/s) is the one the size of KY4.

    Returns
    -------
    DemandNoise
        Weekend factor, σ of the daily log factor, σ and lag-1 autocorrelation of the hourly log
        residual.
    """
    frame = pd.read_csv(path)
    local = pd.to_datetime(frame["local_cest"])
    x = pd.Series(frame[column].to_numpy(dtype=np.float64), index=local).dropna()
    x = x[x > 0]
    daily = x.groupby(x.index.normalize()).mean()
    weekend = np.asarray(daily.index.day_of_week >= 5)
    day_log = np.log(daily / daily.groupby(weekend).transform("median"))
    weekend_factor = float(daily[weekend].mean() / daily[~weekend].mean())
    share = np.log(x / x.groupby(x.index.normalize()).transform("mean"))
    key = [np.asarray(x.index.day_of_week >= 5), np.asarray(x.index.hour)]
    resid = share - share.groupby(key).transform("median")
    return DemandNoise(
        weekend_factor=weekend_factor,
        day_sigma=float(day_log.std()),
        hour_sigma=float(resid.std()),
        hour_lag1=float(resid.autocorr(1)),
        source=f"{path.relative_to(ROOT)} [{column}], {len(daily)} days",
    )


def demand_multiplier(
    n_steps: int, noise: DemandNoise, start_local_weekday: int, rng: np.random.Generator
) -> F64:
    """System-wide multiplier per 5-minute step: weekday/weekend × day factor × AR(1) noise.

    Parameters
    ----------
    n_steps
        Number of 5-minute steps (the simulation starts at local midnight).
    noise
        Measured variation (:func:`demand_noise`).
    start_local_weekday
        Day of week (0 = Monday) of the first local day.
    rng
        The seeded generator.

    Returns
    -------
    numpy.ndarray
        Dimensionless factors, mean ≈ 1 over weekdays.
    """
    steps_per_day = DAY_S // STEP_S
    day = np.arange(n_steps) // steps_per_day
    n_days = int(day[-1]) + 1
    weekday = (start_local_weekday + np.arange(n_days)) % 7
    weekly = np.where(weekday >= 5, noise.weekend_factor, 1.0)
    daily = np.exp(rng.normal(0.0, noise.day_sigma, n_days))
    phi = noise.hour_lag1 ** (STEP_S / 3600)  # the hourly lag-1 correlation per 5-minute step
    innov = rng.normal(0.0, noise.hour_sigma * math.sqrt(1 - phi**2), n_steps)
    innov[0] = rng.normal(0.0, noise.hour_sigma)  # start in the stationary distribution
    ar = lfilter([1.0], [1.0, -phi], innov)  # ar[t] = phi * ar[t-1] + innov[t]
    out: F64 = (weekly * daily)[day] * np.exp(ar)
    return out


def pattern_5min(hourly: F64, n_steps: int) -> F64:
    """An hourly, daily-repeating pattern interpolated linearly (periodically) to 5-minute steps."""
    t_h = (np.arange(n_steps) * STEP_S / 3600.0) % len(hourly)
    out: F64 = np.interp(t_h, np.arange(len(hourly) + 1), np.r_[hourly, hourly[0]])
    return out


def undirected_graph(wn: Any) -> nx.Graph:
    """Pipes (and pumps) as an undirected graph weighted by length in metres."""
    graph = nx.Graph()
    for name, link in wn.links():
        length = float(getattr(link, "length", 1.0))
        graph.add_edge(link.start_node_name, link.end_node_name, weight=length, name=name)
    return graph


def place_sensors(
    graph: nx.Graph, candidates: list[str], start_from: str, n: int
) -> tuple[list[str], float]:
    """Greedy farthest-point sampling on network distance.

    Returns the chosen junctions and the largest network distance (m) from any candidate to its
    nearest sensor after placement.
    """
    dist = nx.single_source_dijkstra_path_length(graph, start_from, weight="weight")
    first = max(candidates, key=lambda c: (dist.get(c, -1.0), c))
    chosen = [first]
    nearest = np.array(
        [
            nx.single_source_dijkstra_path_length(graph, first, weight="weight").get(c, np.inf)
            for c in candidates
        ]
    )
    while len(chosen) < n:
        pick = candidates[int(np.argmax(nearest))]
        chosen.append(pick)
        d = nx.single_source_dijkstra_path_length(graph, pick, weight="weight")
        nearest = np.minimum(nearest, np.array([d.get(c, np.inf) for c in candidates]))
    return chosen, float(nearest.max())


def schedule_leaks(
    wn: Any,
    pressure: pd.DataFrame,
    lengths: pd.Series,
    *,
    mean_demand: float,
    first_s: int,
    last_s: int,
    rng: np.random.Generator,
) -> list[Leak]:
    """The leak schedule between ``first_s`` and ``last_s`` (seconds from the start).

    Parameters
    ----------
    wn
        The WNTR model (not yet split).
    pressure
        Leak-free junction pressures (m), index in seconds from the start.
    lengths
        Pipe lengths (m) by pipe name.
    mean_demand
        Mean system demand (m³/s) the leak shares are of.
    first_s, last_s
        The schedule lies inside.
    rng
        The seeded generator.
    """
    windows: list[tuple[int, int]] = []
    t = first_s
    while True:
        t += round(float(rng.uniform(*GAP_H)) * 3600 / STEP_S) * STEP_S
        dur = round(float(rng.uniform(*DURATION_H)) * 3600 / STEP_S) * STEP_S
        if t + dur > last_s:
            break
        windows.append((t, t + dur))
        t += dur
    shares = np.exp(np.linspace(math.log(LEAK_SHARE[0]), math.log(LEAK_SHARE[1]), len(windows)))
    shares = rng.permutation(shares)
    pmin = pressure.min()
    pipes = [
        name
        for name, pipe in wn.pipes()
        if pipe.length >= MIN_LEAK_PIPE_M
        and pipe.start_node_name in pmin.index
        and pipe.end_node_name in pmin.index
        and wn.get_node(pipe.start_node_name).node_type == "Junction"
        and wn.get_node(pipe.end_node_name).node_type == "Junction"
        and min(pmin[pipe.start_node_name], pmin[pipe.end_node_name]) >= MIN_LEAK_PRESSURE_M
    ]
    weight = lengths[pipes].to_numpy(dtype=np.float64)
    picked = rng.choice(len(pipes), size=len(windows), replace=False, p=weight / weight.sum())
    leaks = []
    for i, ((a, b), share, k) in enumerate(zip(windows, shares, picked, strict=True), 1):
        pipe = wn.get_link(pipes[int(k)])
        rows = (pressure.index >= a) & (pressure.index < b)
        p_mean = float(pressure.loc[rows, [pipe.start_node_name, pipe.end_node_name]].mean().mean())
        q = share * mean_demand
        area = q / (DISCHARGE_COEFF * math.sqrt(2 * G * p_mean))
        leaks.append(Leak(f"L{i:02d}", pipe.name, f"LEAK-{i:02d}", a, b, area, float(share)))
    return leaks


def load_network(networks: Path, name: str = "ky4") -> tuple[Any, gpd.GeoDataFrame]:
    """The WNTR model and its pipes' surveyed geometries (in the GeoPackage's CRS)."""
    import wntr

    wn = wntr.network.WaterNetworkModel(str(networks / f"{name}.inp"))
    pipes = pyogrio.read_dataframe(networks / f"{name}_network.gpkg", layer="pipes")
    return wn, pipes


def set_demands(wn: Any, multiplier: F64) -> None:
    """Replace each junction's demand pattern by a 5-minute one times ``multiplier``."""
    n = len(multiplier)
    default = wn.options.hydraulic.pattern
    made: dict[str, str] = {}
    for _, junction in wn.junctions():
        for ts in junction.demand_timeseries_list:
            name = ts.pattern_name or default
            if name not in made:
                base = np.asarray(wn.get_pattern(name).multipliers, dtype=np.float64)
                hourly_step = wn.options.time.pattern_timestep
                if hourly_step != 3600:
                    raise ValueError(f"pattern {name}: step {hourly_step} s, expected 3600")
                made[name] = f"{name}-bench"
                wn.add_pattern(made[name], list(pattern_5min(base, n) * multiplier))
            ts.pattern_name = made[name]
    wn.options.time.pattern_timestep = STEP_S


def configure(wn: Any, days: int) -> None:
    wn.options.time.duration = days * DAY_S - STEP_S
    wn.options.time.hydraulic_timestep = STEP_S
    wn.options.time.report_timestep = STEP_S
    wn.options.time.quality_timestep = 0
    wn.options.quality.parameter = "NONE"
    wn.options.hydraulic.demand_model = "DDA"


def run(args: argparse.Namespace) -> Path:
    """Build the benchmark (or return the cached one)."""
    import wntr

    name = f"ky4-s{args.seed}-d{args.days}-c{args.calibration_days}-n{args.sensors}"
    out = Path(args.out) / (name if args.solver == "wntr" else f"{name}-{args.solver}")
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and not args.force:
        print(f"cached: {out}")
        return out
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    end = (
        datetime.fromisoformat(args.end)
        if args.end
        else datetime.now(UTC).replace(hour=5, minute=0, second=0, microsecond=0)
        - timedelta(days=1)
    )
    start = end - timedelta(days=args.days)
    n_steps = args.days * DAY_S // STEP_S
    noise = demand_noise()
    local_start = start + timedelta(seconds=UTC_OFFSET_S)
    multiplier = demand_multiplier(n_steps, noise, local_start.weekday(), rng)

    networks = Path(args.datasets) / "water_networks"
    if not (networks / "ky4.inp").exists():
        raise FileNotFoundError(f"{networks / 'ky4.inp'} not found (bench-only data; --datasets)")
    wn, pipes_gdf = load_network(networks)
    mean_base = sum(j.base_demand for _, j in wn.junctions())  # m³/s
    set_demands(wn, multiplier)
    configure(wn, args.days)

    # 1. Leak-free pass with EPANET (fast) to place sensors and size the leaks.
    t0 = time.perf_counter()
    free = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(out / "epanet-free"))
    for suffix in (".inp", ".rpt", ".bin"):
        (out / f"epanet-free{suffix}").unlink(missing_ok=True)
    p_free = free.node["pressure"][wn.junction_name_list]
    demand_free = free.node["demand"][wn.junction_name_list].sum(axis=1)
    cal_rows = p_free.index < args.calibration_days * DAY_S
    mean_demand = float(demand_free[cal_rows].mean())  # m³/s, the calibration window's mean
    epanet_s = time.perf_counter() - t0

    graph = undirected_graph(wn)
    candidates = [j for j in wn.junction_name_list if p_free[j].min() >= MIN_SENSOR_PRESSURE_M]
    sensors, coverage_m = place_sensors(graph, candidates, wn.reservoir_name_list[0], args.sensors)

    lengths = pd.Series({name: pipe.length for name, pipe in wn.pipes()})
    leaks = schedule_leaks(
        wn,
        p_free,
        lengths,
        mean_demand=mean_demand,
        first_s=args.calibration_days * DAY_S,
        last_s=(args.days - 1) * DAY_S,
        rng=rng,
    )
    for leak in leaks:
        wn = wntr.morph.split_pipe(wn, leak.pipe, f"{leak.pipe}-B", leak.junction)
        if args.solver == "wntr":  # else an emitter, switched in run_emitters
            wn.get_node(leak.junction).add_leak(
                wn, leak.area_m2, DISCHARGE_COEFF, start_time=leak.start_s, end_time=leak.end_s
            )

    # 2. The run with leaks: WNTR's solver (the one that models add_leak), or EPANET with each
    # leak as an emitter switched on and off through the toolkit (the same orifice law).
    t0 = time.perf_counter()
    print(
        f"simulating {args.days} days at {STEP_S} s with {len(leaks)} leaks ({args.solver})…",
        flush=True,
    )
    if args.solver == "wntr":
        res = wntr.sim.WNTRSimulator(wn).run_sim()
        pressure = res.node["pressure"][sensors]
        leak_demand = res.node["leak_demand"][[leak.junction for leak in leaks]]
    else:
        pressure, leak_demand = run_emitters(wn, leaks, sensors, out)
    leaks_s = time.perf_counter() - t0
    if len(pressure) != n_steps:
        raise RuntimeError(f"simulation gave {len(pressure)} steps, expected {n_steps}")
    drift = float(
        np.abs(pressure.to_numpy()[cal_rows] - p_free[sensors].to_numpy()[cal_rows]).max()
    )

    # 3. Sensors: range, offset, noise, quantisation.
    p_max = pressure.max().to_numpy()
    fs_m = np.where(p_max <= 0.9 * RANGES_PSI[0] * PSI_TO_M, RANGES_PSI[0], RANGES_PSI[1])
    fs_m = fs_m * PSI_TO_M
    offset = rng.uniform(-ACCURACY_FS, ACCURACY_FS, len(sensors)) * fs_m
    noisy = pressure.to_numpy() + offset + rng.normal(0.0, 1.0, pressure.shape) * NOISE_FS * fs_m
    step_m = RESOLUTION_FS * fs_m
    quantised = np.round(noisy / step_m) * step_m
    values_mpa = np.round(quantised * M_HEAD_TO_MPA, 6)

    # 4. Files.
    crs = pyogrio.read_info(networks / "ky4_network.gpkg", layer="pipes")["crs"]
    stamps = pd.date_range(start, periods=n_steps, freq=f"{STEP_S}s", tz="UTC")
    sensor_ids = [f"ky4-p-{j.lower()}" for j in sensors]
    write_gis(out, wn, pipes_gdf, crs, sensors, sensor_ids, fs_m, start)
    long = pd.DataFrame(
        {
            "sensor": np.repeat(np.asarray(sensor_ids, dtype=object)[None, :], n_steps, 0).ravel(),
            "ts": np.repeat(
                stamps.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy()[:, None], len(sensors), 1
            ).ravel(),
            "value": values_mpa.ravel(),
        }
    )
    long.to_csv(out / "readings.csv", index=False, float_format="%.6f")
    pressure.rename(columns=dict(zip(sensors, sensor_ids, strict=True))).assign(
        ts=stamps.strftime("%Y-%m-%dT%H:%M:%SZ")
    ).set_index("ts").round(4).to_csv(out / "pressure_true_m.csv.gz")
    schedule = leak_table(leaks, leak_demand, pipes_gdf, crs, start, mean_demand)
    drop, where = leak_signal(leaks, pressure, p_free[sensors])
    schedule["signal_drop_m"] = np.round(drop, 3)
    schedule["signal_sensor"] = [sensor_ids[k] for k in where]
    schedule["signal_noise_sigma_m"] = np.round(NOISE_FS * fs_m[where], 3)
    schedule.to_csv(out / "leaks.csv", index=False)
    manifest = {
        "network": "KY4 (ky4.inp + ky4_network.gpkg, ../shared/datasets/water_networks)",
        "crs_of_source": str(crs),
        "seed": args.seed,
        "days": args.days,
        "calibration_days": args.calibration_days,
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": (start + timedelta(seconds=(n_steps - 1) * STEP_S)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "calibration_end": (start + timedelta(days=args.calibration_days)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "step_s": STEP_S,
        "utc_offset_s_of_model_clock": UTC_OFFSET_S,
        "mean_base_demand_l_s": mean_base * 1000,
        "mean_demand_l_s_calibration": mean_demand * 1000,
        "solver": args.solver,
        "demand_noise": asdict(noise),
        "multiplier_min_max": [float(multiplier.min()), float(multiplier.max())],
        "sensor": {
            "model": "Telog LPR-31 (trimblewater.com/telog-lpr31i)",
            "ranges_psi": list(RANGES_PSI),
            "accuracy_fs": ACCURACY_FS,
            "resolution_fs": RESOLUTION_FS,
            "noise_sigma_fs": NOISE_FS,
            "noise_note": "assumed (two resolution steps); the datasheet gives no noise figure",
        },
        "sensors": [
            {
                "id": sid,
                "junction": j,
                "range_psi": round(float(fs) / PSI_TO_M),
                "offset_m": round(float(o), 4),
                "resolution_m": round(float(r), 4),
                "noise_sigma_m": round(float(fs) * NOISE_FS, 4),
                "pressure_m_min_median_max": [
                    round(float(pressure[j].min()), 2),
                    round(float(pressure[j].median()), 2),
                    round(float(pressure[j].max()), 2),
                ],
            }
            for sid, j, fs, o, r in zip(sensor_ids, sensors, fs_m, offset, step_m, strict=True)
        ],
        "placement": {
            "method": "greedy farthest-point sampling on pipe-length network distance",
            "candidates": len(candidates),
            "max_network_distance_to_nearest_sensor_m": round(coverage_m, 1),
        },
        "leak_model": {"discharge_coeff": DISCHARGE_COEFF, "equation": "Q = Cd A sqrt(2 g p)"},
        "check_calibration_window_max_abs_m_vs_leak_free_epanet": round(drift, 4),
        "seconds": {"epanet_leak_free": round(epanet_s, 1), "with_leaks": round(leaks_s, 1)},
        "readings": int(long.shape[0]),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    print(f"wrote {out} in {time.perf_counter() - started:.0f} s")
    return out


def to_wgs84(frame: gpd.GeoDataFrame, crs: Any) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=crs).to_crs(4326)


def write_gis(
    out: Path,
    wn: Any,
    pipes_gdf: gpd.GeoDataFrame,
    crs: Any,
    sensors: list[str],
    sensor_ids: list[str],
    fs_m: F64,
    start: datetime,
) -> None:
    """Pipes, pumps, nodes and sensors as GeoJSON in EPSG:4326."""
    pipes = to_wgs84(pipes_gdf, crs)
    pipe_out = gpd.GeoDataFrame(
        {
            "external_id": pipes["name"],
            "name": "KY4 " + pipes["name"],
            "source": "ky4",
            "diameter_mm": np.round(pipes["diameter"].to_numpy() * 1000).astype(int),
            "length_m": np.round(pipes["length"].to_numpy(), 2),
            "roughness_hw": pipes["roughness"],
            "start_node": pipes["start_node_name"],
            "end_node": pipes["end_node_name"],
        },
        geometry=pipes.geometry.to_numpy(),
        crs=4326,
    )
    pipe_out.to_file(out / "pipes.geojson", driver="GeoJSON")

    def points(names: list[str], extra: dict[str, list[Any]]) -> gpd.GeoDataFrame:
        xy = np.array([wn.get_node(n).coordinates for n in names], dtype=np.float64)
        frame = gpd.GeoDataFrame(
            {"external_id": names, "source": "ky4", **extra},
            geometry=shapely.points(xy),
            crs=crs,
        )
        return frame.to_crs(4326)

    junctions = [j for j in wn.junction_name_list if not j.startswith("LEAK-")]
    points(
        junctions,
        {
            "elevation_m": [round(wn.get_node(j).elevation, 2) for j in junctions],
            "base_demand_l_s": [round(wn.get_node(j).base_demand * 1000, 4) for j in junctions],
        },
    ).to_file(out / "junctions.geojson", driver="GeoJSON")
    points(
        wn.tank_name_list, {"elevation_m": [wn.get_node(t).elevation for t in wn.tank_name_list]}
    ).to_file(out / "tanks.geojson", driver="GeoJSON")
    points(wn.reservoir_name_list, {}).to_file(out / "reservoirs.geojson", driver="GeoJSON")
    pump_xy = np.array(
        [
            (
                np.add(
                    wn.get_node(p.start_node_name).coordinates,
                    wn.get_node(p.end_node_name).coordinates,
                )
                / 2
            )
            for _, p in wn.pumps()
        ]
    )
    gpd.GeoDataFrame(
        {"external_id": wn.pump_name_list, "name": wn.pump_name_list, "source": "ky4"},
        geometry=shapely.points(pump_xy),
        crs=crs,
    ).to_crs(4326).to_file(out / "pumps.geojson", driver="GeoJSON")

    # Each sensor is bound explicitly to its widest adjacent pipe (a junction is the end of
    # several pipes at distance 0: binding by position would be ambiguous).
    # (The original pipes, from the GIS: the model's are split at the leaks by now.)
    bound = []
    for j in sensors:
        ends = (pipes["start_node_name"] == j) | (pipes["end_node_name"] == j)
        adjacent = pipes.loc[ends, ["diameter", "name"]].sort_values(["diameter", "name"])
        bound.append(str(adjacent["name"].iloc[-1]))
    frame = points(sensors, {})
    gpd.GeoDataFrame(
        {
            "external_id": sensor_ids,
            "kind": "pressure_mpa",
            "unit": "MPa",
            "interval_s": STEP_S,
            "asset_external_id": bound,
            "asset_source": "ky4",
            "installed_on": (start - timedelta(days=1)).date().isoformat(),
            "junction": sensors,
            "range_psi": np.round(fs_m / PSI_TO_M).astype(int),
        },
        geometry=frame.geometry.to_numpy(),
        crs=4326,
    ).to_file(out / "sensors.geojson", driver="GeoJSON")


def run_emitters(
    wn: Any, leaks: list[Leak], sensors: list[str], out: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """EPANET 2.2 through its toolkit, each leak an emitter switched on at onset, off at end.

    An emitter with exponent 0.5 and coefficient C = Cd·A·√(2g) is WNTR's leak law
    Q = Cd·A·√(2 g p). The model (already split at the leaks) is written in L/s and m.

    Returns
    -------
    tuple
        Sensor pressures (m) and leak flows (m³/s) per report step, index in seconds.
    """
    from wntr.epanet import toolkit
    from wntr.network.io import write_inpfile

    inp = out / "emitters.inp"
    wn.options.hydraulic.emitter_exponent = 0.5
    write_inpfile(wn, str(inp), units="LPS")
    en = toolkit.ENepanet(version=2.2)
    en.ENopen(str(inp), str(out / "emitters.rpt"), "")
    try:
        en.ENopenH()
        en.ENinitH(0)
        s_idx = [en.ENgetnodeindex(j) for j in sensors]
        l_idx = [en.ENgetnodeindex(leak.junction) for leak in leaks]
        coeff = [1000 * DISCHARGE_COEFF * leak.area_m2 * math.sqrt(2 * G) for leak in leaks]
        switch: dict[int, list[tuple[int, float]]] = {}
        for i, c, leak in zip(l_idx, coeff, leaks, strict=True):
            switch.setdefault(leak.start_s, []).append((i, c))
            switch.setdefault(leak.end_s, []).append((i, 0.0))
        times, p_rows, q_rows = [], [], []
        t = 0
        while True:
            for i, c in switch.pop(t, []):
                en.ENsetnodevalue(i, 3, c)  # EN_EMITTER
            t = en.ENrunH()
            if t % STEP_S == 0 and (not times or times[-1] != t):
                times.append(t)
                p_rows.append([en.ENgetnodevalue(i, 11) for i in s_idx])  # EN_PRESSURE, m
                q_rows.append([en.ENgetnodevalue(i, 9) / 1000 for i in l_idx])  # EN_DEMAND
            step = en.ENnextH()
            if step <= 0:
                break
            nxt = t + step
            due = [k for k in switch if t < k < nxt]
            if due:  # not expected (events fall on 5-minute steps), but never skip a switch
                raise RuntimeError(f"leak switch at {due} inside a step {t}→{nxt}")
            t = nxt
        en.ENcloseH()
    finally:
        en.ENclose()
        for suffix in (".inp", ".rpt"):
            (out / f"emitters{suffix}").unlink(missing_ok=True)
    pressure = pd.DataFrame(p_rows, index=times, columns=sensors)
    flow = pd.DataFrame(q_rows, index=times, columns=[leak.junction for leak in leaks])
    return pressure, flow


def leak_signal(
    leaks: list[Leak], with_leaks: pd.DataFrame, leak_free: pd.DataFrame
) -> tuple[F64, npt.NDArray[np.intp]]:
    """The largest noise-free pressure drop a leak causes at a sensor in its first hour (m).

    Per sensor: mean of (with leaks − leak-free) over [onset, onset + 1 h) minus the same over
    [onset − 1 h, onset), which cancels the small steady difference between the two solvers (WNTR
    with leaks, EPANET without; a pump switching at a slightly different step near an onset can
    still leave an artefact: an approximation, for context only).

    Returns
    -------
    tuple
        Drop (m, positive = lower pressure) and the index of the sensor that sees it, per leak.
    """
    diff = with_leaks.to_numpy() - leak_free.to_numpy()
    t = with_leaks.index.to_numpy()
    drops, where = [], []
    for leak in leaks:
        after = (t >= leak.start_s) & (t < leak.start_s + 3600)
        before = (t >= leak.start_s - 3600) & (t < leak.start_s)
        d = diff[before].mean(axis=0) - diff[after].mean(axis=0)
        drops.append(float(d.max()))
        where.append(int(d.argmax()))
    return np.asarray(drops), np.asarray(where, dtype=np.intp)


def leak_table(
    leaks: list[Leak],
    leak_demand: pd.DataFrame,
    pipes_gdf: gpd.GeoDataFrame,
    crs: Any,
    start: datetime,
    mean_demand: float,
) -> pd.DataFrame:
    """The schedule with the simulated leak flows and the pipes' midpoints (lon/lat)."""
    pipes = to_wgs84(pipes_gdf, crs).set_index("name")
    rows = []
    for leak in leaks:
        inside = (leak_demand.index >= leak.start_s) & (leak_demand.index < leak.end_s)
        flow = float(leak_demand.loc[inside, leak.junction].mean())  # m³/s
        mid = shapely.line_interpolate_point(pipes.geometry[leak.pipe], 0.5, normalized=True)
        rows.append(
            {
                "leak_id": leak.leak_id,
                "pipe_id": leak.pipe,
                "onset": (start + timedelta(seconds=leak.start_s)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": (start + timedelta(seconds=leak.end_s)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "duration_h": round((leak.end_s - leak.start_s) / 3600, 2),
                "area_m2": round(leak.area_m2, 7),
                "leak_flow_l_s": round(flow * 1000, 3),
                "pct_of_mean_demand": round(100 * flow / mean_demand, 2),
                "target_pct": round(100 * leak.target_share, 2),
                "lon": round(mid.x, 7),
                "lat": round(mid.y, 7),
            }
        )
    return pd.DataFrame(rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--days", type=int, default=70)
    p.add_argument("--calibration-days", type=int, default=42)
    p.add_argument("--sensors", type=int, default=24)
    p.add_argument("--end", default=None, help="RFC 3339 end (default: yesterday 05:00 UTC)")
    p.add_argument("--out", default=str(ROOT / ".data" / "bench" / "leaks"))
    p.add_argument("--force", action="store_true")
    p.add_argument(
        "--solver",
        choices=("wntr", "epanet-emitter"),
        default="wntr",
        help="wntr: WNTRSimulator + add_leak (default); epanet-emitter: EPANET 2.2, each leak an "
        "emitter (exponent 0.5, C = Cd·A·√(2g)) switched through the toolkit: ~20x faster",
    )
    p.add_argument("--datasets", default=str(DATASETS), help="holding water_networks/")
    return p


def main(argv: list[str] | None = None) -> int:
    run(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
