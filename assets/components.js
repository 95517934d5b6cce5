// headlab's own Dash components (namespace "headlab"; Python side: app/components/native.py).
// Plain React without a build step. Each replaces several Dash components on every figure of
// a page, which dash-renderer wraps and renders one by one.
(function () {
  var h = React.createElement;

  // Dash's loading marker for a component whose props a callback is computing (as Dash's own
  // components set it; tests and the UI bench wait for none to be left).
  function loadingMarker() {
    var api = window.dash_component_api;
    return api && api.useDashContext().useLoading() ? {"data-dash-is-loading": true} : {};
  }

  // Dash's DOM id for a dict id: its JSON with the keys sorted.
  function domId(id) {
    if (id === null || typeof id !== "object") return id;
    return "{" + Object.keys(id).sort().map(function (key) {
      return JSON.stringify(key) + ":" + JSON.stringify(id[key]);
    }).join(",") + "}";
  }

  // PlotlyFigure: a plotly figure drawn in the same React pass as the rest of the page, for
  // every figure of the workbench. dcc.Graph is a lazy component (React.lazy + Suspense, then a
  // timer before it draws), so on a full load the Heads heatmap was drawn one render pass and
  // several timer hops after the page, 60-80 ms later. Plotly events are not Dash props here
  // (heatmap clicks: keys.js). Props: id, figure ({data, layout}), config, style, className.
  function PlotlyFigure(props) {
    var ref = React.useRef(null);
    // drawn before the browser paints the page, so the figure appears with it
    React.useLayoutEffect(function () {
      var figure = props.figure || {};
      Plotly.react(ref.current, figure.data || [], figure.layout || {}, props.config || {});
    }, [props.figure, props.config]);
    React.useEffect(function () {
      var gd = ref.current;
      return function () { Plotly.purge(gd); };
    }, []);
    var attrs = {id: domId(props.id), className: props.className, style: props.style};
    return h("div", Object.assign(attrs, loadingMarker()),
             h("div", {ref: ref, style: {width: "100%", height: "100%"}}));
  }

  // Saves a download ({content, filename, type, base64}, as Dash's send_bytes makes it).
  function save(download) {
    var content = download.content;
    if (download.base64) {
      var text = atob(content);
      content = new Uint8Array(text.length);
      for (var i = 0; i < text.length; i++) content[i] = text.charCodeAt(i);
    }
    var blob = new Blob([content], {type: download.type || "application/octet-stream"});
    var url = URL.createObjectURL(blob);
    var link = document.createElement("a");
    link.href = url;
    link.download = download.filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  // ExportMenu: a figure's export controls. A disclosure labelled "FORMAT · preset" opens the
  // format and paper-preset radio buttons; the Export button counts clicks (n_clicks). The
  // server rebuilds the figure from ``spec`` and answers with a ``download`` (saved, then
  // cleared) or an ``error`` shown beside the button.
  // Props: id, spec, formats, presets, format, preset, n_clicks, download, error.
  function ExportMenu(props) {
    var name = domId(props.id);
    var set = props.setProps;
    React.useEffect(function () {
      if (!props.download) return;
      save(props.download);
      set({download: null});
    }, [props.download]);
    function choices(label, key, values, shown) {
      return [
        h("span", {key: key + "-label", className: "field-label"}, label),
        h("div", {key: key, className: "export-choice"}, values.map(function (value) {
          return h("label", {key: value},
            h("input", {
              type: "radio", name: name + "-" + key, value: value,
              checked: props[key] === value,
              onChange: function () { var change = {}; change[key] = value; set(change); }
            }),
            shown(value));
        }))
      ];
    }
    var upper = function (v) { return v.toUpperCase(); };
    var same = function (v) { return v; };
    return h("div", Object.assign({id: name, className: "export-menu"}, loadingMarker()),
      h("details", {className: "export-more"},
        h("summary", {className: "export-summary", title: "format and paper size"},
          upper(props.format) + " · " + props.preset),
        h("div", {className: "export-options"},
          choices("Format", "format", props.formats, upper)
            .concat(choices("Paper", "preset", props.presets, same)))),
      h("button", {
        className: "btn small export-button",
        onClick: function () { set({n_clicks: (props.n_clicks || 0) + 1}); }
      }, "Export"),
      h("span", {className: "export-error"}, props.error || ""));
  }

  window.headlab = Object.assign(window.headlab || {}, {
    PlotlyFigure: PlotlyFigure,
    ExportMenu: ExportMenu
  });
})();
