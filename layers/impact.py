"""The map page's impact panel: alarm impact and "what if here", zones, exposure, cascade.

The behaviour is plain JavaScript in ``impact_panel.js`` (and its stylesheet), inlined into the
page so that the served page and ``cityrisk map --out`` carry the same code and load nothing
more; this element hands it the vocabulary it shows (Chinese first, English second) and the
four severity colours of the legend.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from branca.element import MacroElement
from jinja2 import Template

from app.taxonomy.alarms import LEVEL_NUMERALS
from app.taxonomy.assets import KINDS
from app.taxonomy.labels import KIND_ZH, ORIGIN_ZH, PARAM_ZH, SCENARIO_ZH, SEVERITY_ZH
from layers.styles import FOUR_COLOURS

_PANEL = Template(
    """
{% macro header(this, kwargs) %}
<style>{{ this.css }}</style>
<script>{{ this.js }}</script>
{% endmacro %}
{% macro script(this, kwargs) %}
window.crImpact = crImpactPanel({{ this._parent.get_name() }}, {{ this.config|tojson }});
{% endmacro %}
"""
)


@cache
def _asset(name: str) -> str:
    return files("layers").joinpath(name).read_text(encoding="utf-8")


def panel_config(base_url: str) -> dict[str, Any]:
    """What ``crImpactPanel`` is given: the server's URL prefix and the words it shows."""
    return {
        "base": base_url,
        "colours": {str(k): v for k, v in FOUR_COLOURS.items()},
        "numerals": {str(k): v for k, v in LEVEL_NUMERALS.items()},
        "severityZh": {str(k): v for k, v in SEVERITY_ZH.items()},
        "kindZh": dict(KIND_ZH),
        "kindEn": {k: v.title for k, v in KINDS.items()},
        "scenarioZh": dict(SCENARIO_ZH),
        "paramZh": dict(PARAM_ZH),
        "origins": dict(ORIGIN_ZH),
    }


class ImpactPanel(MacroElement):
    """The impact panel and the "what if here" control, on the map it is added to."""

    _template = _PANEL

    def __init__(self, base_url: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "ImpactPanel"
        self.config = panel_config(base_url)
        self.css = _asset("impact_panel.css")
        self.js = _asset("impact_panel.js")
