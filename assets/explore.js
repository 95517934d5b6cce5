// Explore page: hover a head's thumbnail to focus it, click to lock it (click again: unlock),
// click a token to pick it. Handed to Dash through the page's stores: "explore-focus" gets
// {layer, head, locked}, "explore-token" gets {pos, t}; the server redraws from them.
(function () {
  var lastSent = null;
  var lastGrid = null;  // a new run's grid comes with a new focus store: send again

  function grid() { return document.getElementById("explore-thumbs"); }

  function send(layer, head, locked) {
    var key = layer + "." + head + (locked ? "L" : "");
    var g = grid();
    if (g !== lastGrid) { lastGrid = g; lastSent = null; }
    if (key === lastSent || !window.dash_clientside || !window.dash_clientside.set_props) return;
    lastSent = key;
    window.dash_clientside.set_props("explore-focus", {data: {layer: layer, head: head, locked: locked}});
  }

  function mark(g, thumb, name) {
    var old = g.querySelectorAll(".explore-thumb." + name);
    for (var i = 0; i < old.length; i++) old[i].classList.remove(name);
    if (thumb) thumb.classList.add(name);
  }

  function thumbOf(event) {
    var thumb = event.target.closest ? event.target.closest("#explore-thumbs .explore-thumb") : null;
    return thumb && thumb.dataset.layer !== undefined ? thumb : null;
  }

  function focusOn(event) {
    var thumb = thumbOf(event);
    var g = grid();
    if (!thumb || !g || g.dataset.locked) return;
    mark(g, thumb, "focused");
    send(Number(thumb.dataset.layer), Number(thumb.dataset.head), false);
  }

  function toggleLock(g, thumb) {
    var key = thumb.dataset.layer + "." + thumb.dataset.head;
    var unlock = g.dataset.locked === key;
    g.dataset.locked = unlock ? "" : key;
    mark(g, unlock ? null : thumb, "locked");
    mark(g, thumb, "focused");
    send(Number(thumb.dataset.layer), Number(thumb.dataset.head), !unlock);
  }

  document.addEventListener("mouseover", focusOn);
  document.addEventListener("focusin", focusOn);  // Tab onto a thumbnail focuses its head

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" && event.key !== " ") return;
    var thumb = thumbOf(event);
    var g = grid();
    if (!thumb || !g) return;
    event.preventDefault();
    toggleLock(g, thumb);
  });

  document.addEventListener("click", function (event) {
    var thumb = thumbOf(event);
    var g = grid();
    if (thumb && g) {
      toggleLock(g, thumb);
      return;
    }
    var token = event.target.closest ? event.target.closest("#explore-tokens .explore-token") : null;
    if (token && window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("explore-token", {data: {pos: Number(token.dataset.pos), t: Date.now()}});
    }
  });
})();
