/* The impact panel of the map page (layers/impact.py inlines this file).
 *
 * An alarm marker's popup offers "影响分析 Impact" (GET /alarms/{id}/impact), a suspected
 * event's "爆管影响 Burst impact" (POST /impact, water_main_burst on its top candidate); the
 * "假设分析 What if here" mode turns the next map click into a form (a scenario from GET
 * /impact/scenarios and its key parameters) that POSTs /impact. The answer's zones are drawn
 * in their severity colours in a pane of their own, and the side panel lists the inputs with
 * their origins, who and what is inside each zone, the cascade as a timeline, the actions as a
 * checklist and the notes; "建立事件 Open incident" POSTs /incidents with the same call.
 *
 * Validation is the server's: a 422 names the field, and its detail is shown as written.
 */
/* exported crImpactPanel */
function crImpactPanel(map, cfg) {
  "use strict";
  var base = cfg.base;
  var PANE = "crImpactZones";
  // Above the heatmap (overlayPane, 400) and below markers; clicks pass through it (CSS), so
  // the alarm markers under a zone stay clickable and what-if clicks reach the map.
  map.createPane(PANE).style.zIndex = 450;

  var zones = null;
  var target = null;
  var current = null; // {call: {...}, doc: {...}}
  var scenarios = null;
  var whatIf = false;

  var panel = L.DomUtil.create("aside", "cr-impact", document.body);
  panel.id = "cr-impact";
  panel.setAttribute("aria-live", "polite");

  function esc(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function kind(k) {
    var zh = cfg.kindZh[k], en = cfg.kindEn[k] || k;
    return zh ? zh + " " + en : en;
  }
  function scenarioName(id, title) {
    var zh = cfg.scenarioZh[id];
    return (zh ? zh + " " : "") + (title || id);
  }
  function paramName(name) {
    var zh = cfg.paramZh[name];
    return (zh ? zh + " " : "") + name;
  }
  function num(v) {
    if (typeof v !== "number") { return esc(Array.isArray(v) ? v.join(", ") : v); }
    var a = Math.abs(v);
    return esc(a >= 100 ? Math.round(v).toLocaleString("en") : String(+v.toPrecision(3)));
  }
  function when(iso) {
    if (!iso) { return "—"; }
    var d = new Date(iso);
    if (isNaN(d)) { return esc(iso); }
    function p(n) { return (n < 10 ? "0" : "") + n; }
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
      p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }
  function level(sev) {
    return "<i class='cr-sw' style='background:" + (cfg.colours[sev] || "#888") + "'></i>" +
      esc((cfg.numerals[sev] || sev) + " " + (cfg.severityZh[sev] || ""));
  }
  function originShort(origin) {
    var head = String(origin || "").split(" ", 1)[0].toLowerCase();
    return cfg.origins[head] || String(origin || "").split(" (", 1)[0].slice(0, 24);
  }
  function name(a) { return a.name || (kind(a.kind) + " " + a.id); }

  // What the API says went wrong, in its words: our errors carry {detail: "..."}, FastAPI's
  // own request checks a list of {loc, msg}.
  function errorText(status, body) {
    if (body && Array.isArray(body.detail)) {
      return body.detail.map(function (d) {
        var loc = (d.loc || []).filter(function (x) { return x !== "body"; }).join(".");
        return (loc ? loc + ": " : "") + d.msg;
      }).join("; ");
    }
    if (body && body.detail) { return String(body.detail); }
    return "HTTP " + status;
  }
  function call(method, path, body) {
    var opts = {method: method, headers: {"Accept": "application/json"}};
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    // Writes need a bearer token (a commander's for incidents): the audit actor is the token's
    // name, never a name typed here. Kept for the browser tab only (sessionStorage).
    var key = token();
    if (key) { opts.headers["Authorization"] = "Bearer " + key; }
    return fetch(base + path, opts).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (j) {
        if (!r.ok) {
          var text = errorText(r.status, j);
          if (r.status === 401) { text = "需要令牌 A token is needed: " + text; }
          if (r.status === 403) { text = "权限不足 Not allowed: " + text; }
          var e = new Error(text); e.status = r.status; throw e;
        }
        return j;
      });
    }, function (e) { throw new Error("网络错误 network error: " + e.message); });
  }
  function token() {
    try { return window.sessionStorage.getItem("cr-token") || ""; } catch (e) { return ""; }
  }

  function open() {
    if (!document.body.classList.contains("cr-impact-open")) {
      document.body.classList.add("cr-impact-open");
      map.invalidateSize();
    }
  }
  function close() {
    document.body.classList.remove("cr-impact-open");
    panel.innerHTML = "";
    if (zones) { map.removeLayer(zones); zones = null; }
    if (target) { map.removeLayer(target); target = null; }
    current = null;
    map.invalidateSize();
  }
  function header(title) {
    return "<header><h2>" + title + "</h2><button type='button' class='cr-i-close' " +
      "title='关闭 Close'>×</button></header>";
  }
  function message(title, text, cls) {
    open();
    panel.innerHTML = header(title) + "<p class='" + cls + "'>" + esc(text) + "</p>";
  }

  // -- zones on the map --------------------------------------------------------------------------
  function draw(doc) {
    if (zones) { map.removeLayer(zones); }
    if (target) { map.removeLayer(target); }
    // Outer (less severe, larger) zones first, so the red core is drawn on top.
    var features = doc.zones.features.slice().sort(function (a, b) {
      return b.properties.severity - a.properties.severity ||
        (b.properties.radius_m || 0) - (a.properties.radius_m || 0);
    });
    zones = L.geoJSON({type: "FeatureCollection", features: features}, {
      pane: PANE,
      interactive: false,
      style: function (f) {
        var c = cfg.colours[f.properties.severity] || "#888";
        return {color: c, weight: 2, opacity: 0.95, fillColor: c, fillOpacity: 0.22,
          className: "cr-impact-zone cr-sev-" + f.properties.severity};
      }
    }).addTo(map);
    target = L.circleMarker([doc.target.lat, doc.target.lon], {
      pane: PANE, interactive: false, radius: 5, color: "#111", weight: 2, fillColor: "#fff",
      fillOpacity: 1, className: "cr-impact-target"
    }).addTo(map);
    var b = zones.getBounds();
    if (b.isValid()) { map.fitBounds(b, {padding: [40, 40], maxZoom: 18}); }
  }

  // -- the panel ---------------------------------------------------------------------------------
  function zoneHtml(f) {
    var p = f.properties, e = p.exposure || {};
    var extent = p.radius_m ? "r = " + num(p.radius_m) + " m" : "";
    // A threshold in metres is the radius again; in kPa or kW/m² it says what the ring means.
    var thr = p.threshold !== null && p.threshold !== undefined &&
      !(p.radius_m && p.unit === "m") ? num(p.threshold) + " " + esc(p.unit || "") : "";
    var chips = Object.keys(e.counts || {}).map(function (k) {
      return "<span class='cr-chip'>" + esc(kind(k)) + " ×" + e.counts[k] + "</span>";
    }).join("");
    var sites = (e.sites || []).map(function (s) {
      return "<li>" + esc(kind(s.kind)) + ": <b>" + esc(name(s)) + "</b>" +
        (s.capacity ? " (" + num(s.capacity) + ")" : "") + "</li>";
    }).join("");
    var infra = (e.infrastructure || []).map(function (s) {
      return "<li>" + esc(kind(s.kind)) + ": " + esc(name(s)) + "</li>";
    }).join("");
    return "<div class='cr-zone cr-sev-" + p.severity + "' data-ord='" + p.ord + "'>" +
      "<div class='cr-zone-h'>" + level(p.severity) + " <span class='cr-zone-l'>" +
      esc(p.label) + "</span> <span class='cr-dim'>" + [extent, thr].filter(Boolean).join(" · ") +
      "</span></div>" +
      "<div class='cr-zone-c'><span class='cr-big'>" + num(Math.round(e.residents || 0)) +
      "</span> 居民 residents" +
      (e.underground_spaces ? " · 地下空间 underground " + e.underground_spaces : "") +
      (e.high_consequence_area ? " · <b class='cr-hca'>高后果区 HCA</b>" : "") + "</div>" +
      (chips ? "<div class='cr-chips'>" + chips + "</div>" : "") +
      (sites ? "<ul class='cr-sites'>" + sites + "</ul>" : "") +
      (infra ? "<ul class='cr-infra'>" + infra + "</ul>" : "") + "</div>";
  }
  // The engine's explanation chains name assets by id ("17 failed at T+0 … → 18 fails at
  // T+1 h"); a commander reads names.
  var names = {};
  function explain(text) {
    return esc(text).replace(/\b(\d+) (failed|fails)\b/g, function (m, id, verb) {
      return names[id] ? esc(names[id]) + " " + verb : m;
    });
  }
  function learnNames(doc) {
    names = {};
    var c = doc.cascade || {};
    var all = (c.initial || []).concat(doc.failing || []);
    (c.steps || []).forEach(function (s) { all = all.concat(s.newly_failed, s.on_buffer); });
    all.forEach(function (a) { if (a.name) { names[a.id] = a.name; } });
  }
  function stepHtml(step, initial, first) {
    var items = [];
    if (first) {
      initial.forEach(function (a) {
        items.push("<li class='cr-fail'><b>" + esc(name(a)) + "</b> — " + esc(a.cause) + "</li>");
      });
    }
    step.newly_failed.forEach(function (s) {
      if (first && initial.some(function (a) { return a.id === s.id; })) { return; }
      items.push("<li class='cr-fail'><b>" + esc(name(s)) + "</b> 失效 fails (T+" +
        num(s.fail_at_h) + " h)<div class='cr-why'>" + explain(s.explanation) + "</div></li>");
    });
    step.on_buffer.forEach(function (s) {
      items.push("<li class='cr-buffer'>" + esc(name(s)) + " 靠备用运行 on buffer, fails at T+" +
        num(s.fail_at_h) + " h<div class='cr-why'>" + explain(s.explanation) + "</div></li>");
    });
    Object.keys(step.unserved || {}).forEach(function (net) {
      var n = step.unserved[net].length;
      if (n) {
        items.push("<li class='cr-unserved'>" + (net === "water" ? "停水 no water" :
          net === "gas" ? "停气 no gas" : esc(net)) + ": " + n + "</li>");
      }
    });
    return "<li class='cr-step'><div class='cr-step-h'><b>" + esc(step.label) + "</b>" +
      " <span class='cr-dim'>累计失效 failed so far: " + step.failed_count + "</span></div>" +
      (items.length ? "<ul>" + items.join("") + "</ul>" :
        "<div class='cr-dim'>无新增失效 nothing new fails</div>") + "</li>";
  }
  function render(doc) {
    learnNames(doc);
    var e = doc.exposure || {};
    var names = (doc.scenarios || []).map(function (s) { return scenarioName(s.id, s.title); });
    var why = (doc.scenarios || []).filter(function (s) { return s.why !== "requested"; })
      .map(function (s) { return esc(s.why); }).join("<br>");
    var sites = (e.sites || []).length, infra = (e.infrastructure || []).length;
    var hca = doc.high_consequence_area ? doc.high_consequence_area.is_hca :
      e.high_consequence_area;
    var cascade = doc.cascade || {steps: [], initial: []};
    var inputs = (doc.inputs || []).map(function (i) {
      return "<tr><th>" + esc(paramName(i.name)) + "</th><td>" + num(i.value) + " " +
        esc(i.unit || "") + "</td><td title='" + esc(i.origin) + "'>" +
        esc(originShort(i.origin)) + "</td></tr>";
    }).join("");
    var actions = (doc.actions || []).map(function (a) {
      return "<li><label><input type='checkbox'> <span>" + esc(a.text) + "</span></label>" +
        "<div class='cr-why'>规则 rule " + esc(a.rule) + ": " + esc(a.why) + "</div></li>";
    }).join("");
    var notes = (doc.notes || []).map(function (n) { return "<li>" + esc(n) + "</li>"; }).join("");
    panel.innerHTML = header("影响分析 Impact: " + esc(names.join(" + "))) +
      "<div class='cr-i-body'>" +
      "<p class='cr-target'>" + esc(doc.target.name || (doc.target.kind ? kind(doc.target.kind) :
        "点位 point")) + " · " + doc.target.lon.toFixed(5) + ", " + doc.target.lat.toFixed(5) +
      (doc.alarm_id ? " · 报警 alarm " + esc(doc.alarm_id) : "") + "</p>" +
      "<p class='cr-dim'>数据时刻 data time " + when(doc.at) + " · 计算 computed " +
      when(doc.computed_at) + "</p>" +
      "<p class='cr-why'>" + why + "</p>" +
      "<div class='cr-incident'><label>令牌 Token <input class='cr-token' type='password' " +
      "autocomplete='off' value='" + esc(token()) + "' placeholder='cr_…' maxlength='200'>" +
      "</label> " +
      "<button type='button' class='cr-open-incident'>建立事件 Open incident</button>" +
      "<div class='cr-incident-out'></div></div>" +
      "<div class='cr-summary'>" +
      "<div><span class='cr-big'>" + num(Math.round(e.residents || 0)) + "</span>居民 residents</div>" +
      "<div><span class='cr-big'>" + sites + "</span>重点场所 sites</div>" +
      "<div><span class='cr-big'>" + infra + "</span>基础设施 infrastructure</div>" +
      "<div><span class='cr-big " + (hca ? "cr-hca" : "") + "'>" + (hca ? "是 yes" : "否 no") +
      "</span>高后果区 HCA</div></div>" +
      "<h3>影响区 Zones (" + doc.zones.features.length + ")</h3>" +
      doc.zones.features.map(zoneHtml).join("") +
      "<h3>连锁推演 Cascade</h3><ol class='cr-timeline'>" +
      cascade.steps.map(function (s, i) { return stepHtml(s, cascade.initial || [], i === 0); })
        .join("") + "</ol>" +
      "<h3>处置措施 Actions</h3>" +
      (actions ? "<ul class='cr-actions'>" + actions + "</ul>" : "<p class='cr-dim'>—</p>") +
      "<h3>输入参数 Inputs</h3><table class='cr-inputs'><tr><th>参数 parameter</th>" +
      "<th>取值 value</th><th>来源 origin</th></tr>" + inputs + "</table>" +
      "<h3>说明 Notes</h3><ul class='cr-notes'>" + notes + "</ul></div>";
  }
  function show(req, callBody, title) {
    message(title, "计算中… computing…", "cr-busy");
    return req.then(function (doc) {
      current = {call: callBody, doc: doc};
      open();
      render(doc);
      draw(doc);
      return doc;
    }, function (err) {
      message(title, err.message, "cr-error");
      throw err;
    });
  }

  function impactOfAlarm(id) {
    map.closePopup();
    return show(call("GET", "/alarms/" + encodeURIComponent(id) + "/impact"),
      {alarm_id: +id}, "影响分析 Impact: 报警 alarm " + esc(id)).catch(function () {});
  }

  // A suspected event's top candidate water main (its popup, layers/maps.py): the burst
  // scenario at the event's last data time, as POST /impact; the same call opens an incident.
  function burstOfEvent(el) {
    map.closePopup();
    var body = {scenario: "water_main_burst", asset_id: +el.getAttribute("data-cr-burst")};
    var at = el.getAttribute("data-cr-at");
    if (at) { body.at = at; }
    return show(call("POST", "/impact", body), body, "爆管影响 Burst: 疑似事件 event " +
      esc(el.getAttribute("data-cr-event")) + " · 管道 pipe " + esc(body.asset_id))
      .catch(function () {});
  }

  function openIncident(button) {
    if (!current) { return; }
    var out = panel.querySelector(".cr-incident-out");
    button.disabled = true;
    out.className = "cr-incident-out";
    out.textContent = "建立中… opening…";
    call("POST", "/incidents", current.call).then(function (inc) {
      var href = base + "/incidents/" + inc.id + "/report";
      out.innerHTML = "事件 Incident <b class='cr-incident-id'>#" + esc(inc.id) + "</b> 已建立 " +
        "opened · <span class='cr-by'>" + esc(inc.created_by) + "</span> · " +
        "<a class='cr-report' href='" + esc(href) + "' target='_blank'>" +
        "报告 Report ↗</a>";
    }, function (err) {
      button.disabled = false;
      out.className = "cr-incident-out cr-error";
      out.textContent = err.message;
    });
  }

  // -- what if here --------------------------------------------------------------------------------
  function loadScenarios() {
    if (!scenarios) {
      scenarios = call("GET", "/impact/scenarios").then(function (list) {
        // A point takes the scenarios that do not need an asset of their own.
        return list.filter(function (s) { return s.target !== "asset"; });
      });
      scenarios.catch(function () { scenarios = null; });
    }
    return scenarios;
  }
  function paramFields(s) {
    return s.params.filter(function (p) {
      return p.name !== "steps_h" && (p.schema.type === "number" || p.schema.type === "string" ||
        (p.schema.type === "array" && p.schema.items && p.schema.items.type === "number"));
    }).map(function (p) {
      var dflt = p.default === null || p.default === undefined ? "" :
        (Array.isArray(p.default) ? p.default.join(", ") : String(p.default));
      var input = p.schema.enum ?
        "<select name='" + esc(p.name) + "'><option value=''>默认 default" +
          (dflt ? " (" + esc(dflt) + ")" : "") + "</option>" +
          p.schema.enum.map(function (v) { return "<option>" + esc(v) + "</option>"; }).join("") +
          "</select>" :
        "<input name='" + esc(p.name) + "' data-type='" + esc(p.schema.type) +
          "' placeholder='" + esc(dflt || "—") + "' title='" + esc(p.description) + "'>";
      return "<label><span>" + esc(paramName(p.name)) + (p.unit ? " [" + esc(p.unit) + "]" : "") +
        "</span>" + input + "</label>";
    }).join("");
  }
  // Typed as the scenario says; what does not parse is sent as written, so that the server's
  // 422 names the field and what it expected.
  function readParams(form) {
    var params = {};
    form.querySelectorAll("[name]").forEach(function (el) {
      if (el.name === "scenario") { return; }
      var raw = el.value.trim();
      if (!raw) { return; }
      var type = el.getAttribute("data-type");
      if (type === "number") {
        params[el.name] = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(raw) ? Number(raw) : raw;
      } else if (type === "array") {
        params[el.name] = raw.split(/[,，\s]+/).filter(Boolean).map(function (v) {
          var n = Number(v);
          return isNaN(n) ? v : n;
        });
      } else {
        params[el.name] = raw;
      }
    });
    return params;
  }
  function whatIfForm(latlng) {
    var lon = +latlng.lng.toFixed(7), lat = +latlng.lat.toFixed(7);
    var popup = L.popup({maxWidth: 420, minWidth: 340, className: "cr-whatif-popup"})
      .setLatLng(latlng).setContent("载入情景… loading scenarios…").openOn(map);
    loadScenarios().then(function (list) {
      var div = L.DomUtil.create("div", "cr-whatif");
      div.innerHTML = "<b>假设分析 What if here</b> <span class='cr-dim'>" + lon.toFixed(5) + ", " +
        lat.toFixed(5) + "</span><label><span>情景 Scenario</span><select name='scenario'>" +
        list.map(function (s) {
          return "<option value='" + esc(s.id) + "'>" + esc(scenarioName(s.id, s.title)) +
            "</option>";
        }).join("") + "</select></label><div class='cr-params'></div>" +
        "<button type='button' class='cr-compute'>计算 Compute</button>" +
        "<div class='cr-error cr-form-error' role='alert'></div>";
      var select = div.querySelector("select[name=scenario]");
      function fill() {
        var s = list.filter(function (x) { return x.id === select.value; })[0];
        div.querySelector(".cr-params").innerHTML = s ? paramFields(s) : "";
        popup.update();
      }
      select.addEventListener("change", fill);
      fill();
      div.querySelector(".cr-compute").addEventListener("click", function (ev) {
        var button = ev.currentTarget, err = div.querySelector(".cr-form-error");
        var body = {scenario: select.value, point: [lon, lat], params: readParams(div)};
        button.disabled = true;
        err.textContent = "";
        call("POST", "/impact", body).then(function (doc) {
          map.closePopup(popup);
          setWhatIf(false);
          current = {call: body, doc: doc};
          open();
          render(doc);
          draw(doc);
        }, function (e) {
          // Bad input stays in the form, beside the fields, so it can be corrected.
          button.disabled = false;
          err.textContent = (e.status === 422 ? "输入有误 Bad input: " : "") + e.message;
          popup.update();
        });
      });
      popup.setContent(div);
    }, function (e) {
      popup.setContent("<span class='cr-error'>" + esc(e.message) + "</span>");
    });
  }
  var toggle = L.control({position: "topleft"});
  var toggleButton;
  toggle.onAdd = function () {
    var div = L.DomUtil.create("div", "leaflet-bar cr-whatif-toggle");
    toggleButton = L.DomUtil.create("a", "", div);
    toggleButton.setAttribute("href", "#");
    toggleButton.setAttribute("role", "button");
    toggleButton.textContent = "假设分析 What if here";
    toggleButton.title = "点击地图任意位置 then click anywhere on the map";
    L.DomEvent.disableClickPropagation(div);
    L.DomEvent.on(toggleButton, "click", function (e) {
      L.DomEvent.preventDefault(e);
      setWhatIf(!whatIf);
    });
    return div;
  };
  toggle.addTo(map);
  function setWhatIf(on) {
    whatIf = on;
    // The click-to-inspect lookup reads this and stands aside while a point is being chosen.
    map.crMode = on ? "whatif" : null;
    L.DomUtil[on ? "addClass" : "removeClass"](map.getContainer(), "cr-whatif-on");
    L.DomUtil[on ? "addClass" : "removeClass"](toggleButton, "cr-active");
    toggleButton.textContent = on ? "点击地图选点… click the map (Esc 取消)" :
      "假设分析 What if here";
  }
  map.on("click", function (e) { if (whatIf) { whatIfForm(e.latlng); } });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && whatIf) { setWhatIf(false); }
  });

  // Buttons rendered into popups and the panel are wired here once, by delegation.
  document.addEventListener("click", function (e) {
    var el = e.target.closest ? e.target : null;
    if (!el) { return; }
    var alarm = el.closest("[data-cr-alarm]");
    if (alarm) { e.preventDefault(); impactOfAlarm(alarm.getAttribute("data-cr-alarm")); return; }
    var burst = el.closest("[data-cr-burst]");
    if (burst) { e.preventDefault(); burstOfEvent(burst); return; }
    if (el.closest(".cr-i-close")) { close(); return; }
    var inc = el.closest(".cr-open-incident");
    if (inc) { openIncident(inc); }
  });
  panel.addEventListener("change", function (e) {
    if (e.target.classList.contains("cr-token")) {
      try { window.sessionStorage.setItem("cr-token", e.target.value.trim()); } catch (x) { /* */ }
    }
  });

  return {alarm: impactOfAlarm, burst: burstOfEvent, whatIf: setWhatIf, close: close,
    current: function () { return current; }};
}
