// Circuit graphs (Circuits page): a click on a head node opens that head's detail on the Heads
// page. The figure's layout.meta.head_link is the URL with "{node}" for the node name (set by
// app.figures.circuits.link_heads); the node trace is the trace whose meta is "nodes". The head
// is found from the click position and the drawn axes (plotly's own click event reports the
// last hover, computed at most every 50 ms): the nearest head marker within HIT_PX, or the head
// whose label was clicked. Press and release within 4 px is a click (a drag stays plotly's
// zoom). The cursor is a pointer over a head that a click would open.
(function () {
  var HIT_PX = 12;
  var HEAD = /^a\d+\.h\d+$/;

  function nodeTrace(gd) {  // in _fullData: x and y decoded (the JSON may hold typed arrays)
    var data = gd._fullData || [];
    for (var i = 0; i < data.length; i++) {
      if (data[i].meta === "nodes") return i;
    }
    return -1;
  }

  // The head under (clientX, clientY) in the graph of this drag layer, or null.
  function headAt(drag, clientX, clientY) {
    var gd = drag.closest(".js-plotly-plot");
    var full = gd && gd._fullLayout;
    if (!full || !full.xaxis || !full.yaxis || !full.meta || !full.meta.head_link) return null;
    var index = nodeTrace(gd);
    if (index < 0) return null;
    var trace = gd._fullData[index];
    var box = drag.getBoundingClientRect();
    var px = clientX - box.left, py = clientY - box.top;
    var best = null, bestDistance = HIT_PX;
    for (var i = 0; i < trace.text.length; i++) {
      if (!HEAD.test(trace.text[i])) continue;
      var dx = full.xaxis.l2p(trace.x[i]) - px, dy = full.yaxis.l2p(trace.y[i]) - py;
      var distance = Math.sqrt(dx * dx + dy * dy);
      if (distance <= bestDistance) { best = trace.text[i]; bestDistance = distance; }
    }
    if (best === null) {  // a click on a head's label
      var layer = gd.querySelectorAll(".scatterlayer .trace")[index];
      var labels = layer ? layer.querySelectorAll(".textpoint text") : [];
      for (var j = 0; j < labels.length; j++) {
        var r = labels[j].getBoundingClientRect();
        var name = labels[j].textContent;
        var inside = clientX >= r.left && clientX <= r.right && clientY >= r.top && clientY <= r.bottom;
        if (inside && HEAD.test(name)) { best = name; break; }
      }
    }
    return best === null ? null : full.meta.head_link.replace("{node}", encodeURIComponent(best));
  }

  function open(href, event) {
    if (event.ctrlKey || event.metaKey || event.shiftKey) {
      window.open(href, "_blank");
      return;
    }
    window.history.pushState({}, "", href);  // as dcc.Link navigates: the router follows
    window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
    window.scrollTo(0, 0);
  }

  function dragLayer(target) {
    return target && target.closest ? target.closest(".circuit-card .nsewdrag") : null;
  }

  var press = null;
  document.addEventListener("mousedown", function (event) {
    var drag = dragLayer(event.target);
    press = drag && event.button === 0 ? {drag: drag, x: event.clientX, y: event.clientY} : null;
  }, true);
  document.addEventListener("mouseup", function (event) {
    var start = press;
    press = null;
    if (!start || Math.abs(event.clientX - start.x) > 4 || Math.abs(event.clientY - start.y) > 4) return;
    var href = headAt(start.drag, event.clientX, event.clientY);
    if (href) open(href, event);
  }, true);
  document.addEventListener("mousemove", function (event) {
    var drag = dragLayer(event.target);
    if (!drag || event.buttons) return;
    var pointer = headAt(drag, event.clientX, event.clientY) !== null;
    drag.style.cursor = pointer ? "pointer" : "";
  }, true);
})();
