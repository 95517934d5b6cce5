// headlab.PlotlyFigure: a plotly figure drawn in the same React pass as the rest of the page.
// dcc.Graph is a lazy component (React.lazy + Suspense, then a timer before it draws), so on a
// full load the Heads heatmap was drawn one render pass and several timer hops after the page,
// 60-80 ms later. Props: id, figure ({data, layout}), config, style, className.
(function () {
  var h = React.createElement;

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
    return h("div", {id: props.id, className: props.className, style: props.style},
             h("div", {ref: ref, style: {width: "100%", height: "100%"}}));
  }

  window.headlab = Object.assign(window.headlab || {}, {PlotlyFigure: PlotlyFigure});
})();
