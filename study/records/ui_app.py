"""MLflow's server with the study's pages kept in model-training mode, as an MLflow app
(``mlflow ui --app-name ccn-study``; ``python -m study.ui`` runs it).

MLflow 3's UI picks a page's mode from the link (``workflowType=...``) and otherwise from the
browser's own storage (``mlflow.workflowType_v1``), which starts at GenAI: the study's link
opens in model training, but one click on a trial (a link without the parameter) lands in
GenAI's pages. This app's index page sets that storage to model training before MLflow's
script reads it (and keeps MLflow's assistant panel from opening by itself), so every page
clicked from the study's link stays there; it also brings an experiment page reached without
a view (the breadcrumb back from a trial) to the study's shared view (``study.records.view``)
when the experiment has one, and starts a trial's *Model metrics* page from the charts its run
names (``study.records.view.trial_charts``); an experiment's name in MLflow's lists wraps
rather than being cut. A user's own choice on the mode switch holds until
the page is loaded afresh.
"""

from __future__ import annotations

import json
from typing import Any

from study.records.tags import RUN_CHARTS_TAG, SHARED_VIEW_TAG, VIEW_KEY

APP_NAME = "ccn-study"  # the entry point of group "mlflow.app" (pyproject.toml)
# MLflow's useLocalStorage keys (name "_v" version) of the mode and of the assistant's
# opening on a first visit
MODE_KEY = "mlflow.workflowType_v1"
ASSISTANT_KEY = "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1"

# Runs before MLflow's own script (it is the first script of the page's head).
SCRIPT = r"""<script>(function () {
  try {
    localStorage.setItem(@MODE_KEY@, JSON.stringify("machine_learning"));
    // MLflow opens its assistant panel (370 px) on a browser's first visit, pushing the
    // configuration's columns off the first screen: the panel stays closed until asked for
    if (localStorage.getItem(@ASSISTANT_KEY@) === null) {
      localStorage.setItem(@ASSISTANT_KEY@, "true");
    }
  } catch (e) {}
  var views = {}, last = location.hash;
  function shared(id) {
    if (!(id in views)) {
      views[id] = fetch("ajax-api/2.0/mlflow/experiments/get?experiment_id=" + id)
        .then(function (r) { return r.ok ? r.json() : {}; })
        .then(function (j) {
          var tags = (j.experiment && j.experiment.tags) || [];
          return tags.some(function (t) { return t.key === @TAG@; });
        }).catch(function () { return false; });
    }
    return views[id];
  }
  function bare(hash) {  // the experiment a runs page without a view shows, or null
    var m = /^#\/experiments\/(\d+)(\/runs)?\/?(\?(.*))?$/.exec(hash);
    return m && !/(^|&)viewStateShareKey=/.test(m[4] || "") ? m[1] : null;
  }
  function arrived(before) {
    var id = bare(location.hash);
    // only on arriving from another page: a view the user changed on this one stays
    if (id === null || new RegExp("^#/experiments/" + id + "(/runs)?/?(\\?|$)").test(before)) {
      return;
    }
    shared(id).then(function (has) {
      if (has && bare(location.hash) === id) {
        location.replace("#/experiments/" + id + "/runs?viewStateShareKey=" + @KEY@ +
                         "&workflowType=machine_learning");
      }
    });
  }
  // A trial's Model metrics page starts from the chart state its run carries (a run tag:
  // its curves with whole titles, no one-bar charts of its final numbers). MLflow's run page
  // reads its state from the browser's storage as it first draws, and draws every metric when
  // there is none: the state is read here, at that moment (a synchronous request, so that the
  // first drawing has it); once MLflow stores its own, the user's changes hold.
  var charts = {}, getItem = Storage.prototype.getItem;
  var RUN_PAGE = /^MLflowLocalStorage-[0-9.]+-RunPage-([0-9a-f]+)-model-chartUIState$/;
  Storage.prototype.getItem = function (key) {
    var value = getItem.call(this, key), m = value === null && RUN_PAGE.exec(String(key));
    if (!m) { return value; }
    if (!(m[1] in charts)) {
      charts[m[1]] = null;
      try {
        var x = new XMLHttpRequest();
        x.open("GET", "ajax-api/2.0/mlflow/runs/get?run_id=" + m[1], false);
        x.send();
        var tags = x.status === 200 ? (JSON.parse(x.responseText).run.data.tags || []) : [];
        tags.forEach(function (t) { if (t.key === @RUN_CHARTS@) { charts[m[1]] = t.value; } });
      } catch (e) {}
    }
    return charts[m[1]];
  };
  // MLflow's router moves with the history API, which fires no event: look four times a second
  setInterval(function () {
    if (location.hash !== last) { var before = last; last = location.hash; arrived(before); }
  }, 250);
})();</script>"""
for _name, _value in (
    ("MODE_KEY", MODE_KEY),
    ("ASSISTANT_KEY", ASSISTANT_KEY),
    ("TAG", SHARED_VIEW_TAG + VIEW_KEY),
    ("KEY", VIEW_KEY),
    ("RUN_CHARTS", RUN_CHARTS_TAG),
):
    SCRIPT = SCRIPT.replace(f"@{_name}@", json.dumps(_value))


# MLflow's lists of experiments (its home page, its Experiments page) cut a name past about
# 35 characters at 1440 px, and a comparison's experiments differ at the end of their names
# (``...-columnar``, ``...-extended-fresh``): the name wraps instead, its row as tall as it.
# A chart's title in the chart view (three cards a row at 1440 px) wraps too.
LINK = '[data-testid="experiment-list-item-link"]'
STYLE = f"""<style>
a{LINK}, :has(> a{LINK}) {{
  white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; overflow-wrap: anywhere;
}}
[role="row"]:has(a{LINK}) {{ height: auto !important; align-items: stretch !important; }}
[role="row"]:has(a{LINK}) > [role="cell"] {{
  height: auto !important; min-height: 40px; display: flex; align-items: center;
}}
[data-testid="experiment-view-compare-runs-card"] h4 {{
  white-space: normal !important; overflow-wrap: anywhere;
}}
</style>"""


def with_script(html: bytes) -> bytes:
    """MLflow's index page with :data:`SCRIPT` as the first thing its head runs, and
    :data:`STYLE`."""
    return html.replace(b"<head>", b"<head>" + SCRIPT.encode() + STYLE.encode(), 1)


def create_app() -> Any:
    """MLflow's tracking server app (its FastAPI wrapper under uvicorn, as MLflow's own
    default is) whose index page carries :data:`SCRIPT`."""
    from mlflow.environment_variables import _MLFLOW_SGI_NAME
    from mlflow.server import app
    from mlflow.server.fastapi_app import create_fastapi_app

    @app.after_request
    def model_training_first(response):  # noqa: ANN001, ANN202 - Flask's hook
        if response.mimetype == "text/html" and response.status_code == 200:
            response.direct_passthrough = False  # a file's response streams unless told
            body = response.get_data()
            if b'<div id="root"' in body:  # the index page, wherever the static prefix puts it
                response.set_data(with_script(body))
        return response

    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        return create_fastapi_app(app)
    return app
