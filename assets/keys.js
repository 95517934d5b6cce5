// Arrow-key navigation between heads on the Heads page: each press is handed to Dash as a
// {key, t} value of the "heads-key" store; the server callback moves the selection.
(function () {
  var KEYS = ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight"];
  document.addEventListener("keydown", function (event) {
    if (KEYS.indexOf(event.key) < 0 || !document.getElementById("heads-heatmap")) return;
    var target = event.target;
    var tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable) return;
    if (!window.dash_clientside || !window.dash_clientside.set_props) return;
    event.preventDefault();
    window.dash_clientside.set_props("heads-key", {data: {key: event.key, t: Date.now()}});
  });
})();

// A click on a heatmap cell selects that head, read from the click position and the drawn axes:
// plotly's own click event reports the last *hover*, which plotly computes at most every 50 ms,
// so a quick click on another cell could report the cell before. Press and release within 4 px
// is a click (a drag stays plotly's). Handed to Dash as {layer, head, t} in "heads-click".
(function () {
  var press = null;
  document.addEventListener("mousedown", function (event) {
    var drag = event.target.closest ? event.target.closest("#heads-heatmap .nsewdrag") : null;
    press = drag && event.button === 0 ? {drag: drag, x: event.clientX, y: event.clientY} : null;
  }, true);
  document.addEventListener("mouseup", function (event) {
    var start = press;
    press = null;
    if (!start || Math.abs(event.clientX - start.x) > 4 || Math.abs(event.clientY - start.y) > 4) return;
    var gd = start.drag.closest(".js-plotly-plot");
    var full = gd && gd._fullLayout;
    if (!full || !full.xaxis || !full.yaxis) return;
    if (!window.dash_clientside || !window.dash_clientside.set_props) return;
    var box = start.drag.getBoundingClientRect();
    var head = Math.round(full.xaxis.p2l(event.clientX - box.left));
    var layer = Math.round(full.yaxis.p2l(event.clientY - box.top));
    window.dash_clientside.set_props("heads-click", {data: {layer: layer, head: head, t: Date.now()}});
  }, true);
})();
