// The Heads page's ?head=aL.hH (or L.H) selects that head once the page is drawn, exactly as a
// click on its heatmap cell does: {layer, head, t} handed to Dash in "heads-click" (the
// circuit graph's head nodes link here). Read on a full load and after in-app navigation
// (dcc.Link / pushState, back and forward); it waits for the new page's heatmap (at most 15 s).
(function () {
  var HEAD = /^a?(\d+)\.h?(\d+)$/;

  function wanted() {
    if (window.location.pathname !== "/heads") return null;
    var value = new URLSearchParams(window.location.search).get("head");
    var match = value && HEAD.exec(value.trim());
    return match ? {layer: parseInt(match[1], 10), head: parseInt(match[2], 10)} : null;
  }

  function heatmap() {
    var gd = document.querySelector("#heads-heatmap .js-plotly-plot");
    return gd && gd._fullLayout && gd._fullLayout.xaxis ? gd : null;
  }

  function follow() {
    var cell = wanted();
    if (!cell) return;
    var before = document.querySelector("#heads-heatmap .js-plotly-plot");  // the old page's
    var url = window.location.href, started = Date.now();
    (function wait() {
      if (window.location.href !== url || Date.now() - started > 15000) return;
      var gd = heatmap();
      // React may keep the old page's heatmap element for the new page: then after 1.5 s
      var stale = gd === before && Date.now() - started < 1500;
      if (!gd || stale || !window.dash_clientside || !window.dash_clientside.set_props) {
        setTimeout(wait, 50);
        return;
      }
      window.dash_clientside.set_props(
        "heads-click", {data: {layer: cell.layer, head: cell.head, t: Date.now()}});
    })();
  }

  window.addEventListener("_dashprivate_pushstate", follow);
  window.addEventListener("popstate", follow);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", follow);
  } else {
    follow();
  }
})();
