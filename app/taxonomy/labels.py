"""Chinese names of the words the commanders' screens show (map panel, incident report).

Screens in a Chinese command centre read Chinese first and English second ("学校 School"):
the English is the taxonomy's own title or id, so only the Chinese lives here. A word missing
here shows in English only, never as a blank.
"""

from __future__ import annotations

from typing import Final

#: Asset kind → Chinese name (kinds of :mod:`app.taxonomy.assets`).
KIND_ZH: Final[dict[str, str]] = {
    "gas_pipe": "燃气管道",
    "water_pipe": "供水管道",
    "drainage_pipe": "排水管道",
    "heating_pipe": "供热管道",
    "utility_tunnel": "综合管廊",
    "manhole": "检查井/地下空间",
    "gas_station": "燃气场站",
    "bridge": "桥梁",
    "substation": "变电站",
    "power_plant": "电厂",
    "pump_station": "泵站",
    "valve": "阀门",
    "junction": "管网节点",
    "hydrant": "消火栓",
    "chemical_plant": "危化企业",
    "weather_station": "气象站",
    "construction_site": "施工工地",
    "crowded_place": "人员密集场所",
    "subway_station": "地铁站",
    "flood_zone": "易涝区",
    "landslide_zone": "滑坡区",
    "ponding_point": "积水点",
    "school": "学校",
    "hospital": "医院",
    "clinic": "诊所",
    "daycare": "托幼机构",
    "elderly_care": "养老机构",
    "shelter": "应急避难场所",
    "fire_station": "消防站",
    "police_station": "派出所",
    "population_cell": "人口网格",
    "building": "建筑",
    "admin_area": "行政区",
}

#: Impact scenario id → Chinese name (scenarios of :mod:`app.impact.params`).
SCENARIO_ZH: Final[dict[str, str]] = {
    "gas_pipe_rupture": "燃气管道破裂",
    "gas_migration": "燃气窜入地下空间",
    "vapour_cloud_explosion": "蒸气云爆炸",
    "jet_fire": "喷射火",
    "pool_fire": "池火",
    "toxic_release": "有毒物质泄漏",
    "water_main_burst": "供水管爆管",
    "flood": "内涝/洪水",
    "asset_failure": "设施失效",
}

#: Scenario parameter name → Chinese name.
PARAM_ZH: Final[dict[str, str]] = {
    "diameter_mm": "管径",
    "pressure_mpa": "压力",
    "adjacent_m": "邻近距离",
    "reach_m": "追踪距离",
    "mass_kg": "可燃物质量",
    "fuel": "燃料",
    "yield_fraction": "爆炸效率",
    "tnt_equivalent_kg": "TNT当量",
    "thresholds_kpa": "超压阈值",
    "mass_rate_kg_s": "泄漏速率",
    "hole_diameter_mm": "孔径",
    "thresholds_kw_m2": "热辐射阈值",
    "pool_area_m2": "液池面积",
    "chemical": "化学品",
    "spill": "泄漏规模",
    "period": "昼/夜",
    "wind_dir_deg": "风向",
    "wind_speed_ms": "风速",
    "collapse_radius_m": "塌陷半径",
    "flood_radius_m": "积水半径",
    "failed_valves": "失效阀门",
    "depth_m": "水深",
    "radius_m": "半径",
    "fail_depth_m": "失效水深",
    "region": "地区",
    "steps_h": "推演时刻",
}

#: Zone severity (1 … 4) → Chinese level name, as warning levels are written (I 红 … IV 蓝).
SEVERITY_ZH: Final[dict[int, str]] = {1: "红", 2: "橙", 3: "黄", 4: "蓝"}

#: Incident status → Chinese.
STATUS_ZH: Final[dict[str, str]] = {"open": "处置中", "contained": "已控制", "closed": "已关闭"}


#: An input's origin (``request``, ``default (…)``, ``asset attribute …``, ``reading of …``)
#: by its first word → a short bilingual name; the full origin is shown beside it.
ORIGIN_ZH: Final[dict[str, str]] = {
    "request": "请求 request",
    "default": "默认 default",
    "asset": "资产属性 asset",
    "reading": "实时读数 reading",
    "data": "数据时刻 data time",
    "first": "推定 derived",
}


def origin_zh(origin: str) -> str:
    """The short bilingual kind of an input's origin.

    >>> origin_zh("default (ALOHA levels of concern)")
    '默认 default'
    >>> origin_zh("asset attribute diameter_mm")
    '资产属性 asset'
    """
    head = origin.split(" ", 1)[0].lower()
    return ORIGIN_ZH.get(head, origin.split(" (", 1)[0][:24])
