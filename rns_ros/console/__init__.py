"""The teaching console: a web page from which a person teaches a running `rns` node (docs/teaching.md,
"The teaching console"); console script `rns_console`.

A room of its own, and a separate node: it speaks to the rns node only through its public ROS
interface (topics and services, found by name and in the ROS graph), so it runs just as well on a
laptop next to the robot. It imports nothing of the engine (rns_ros.core) or of the node's parts
(test/test_layout.py checks), only message conversions.

settings.py   ConsoleConfig: every parameter with its default, checked
node.py       ConsoleNode: the rns node's class map, diagnostics, cameras, raw inputs, services
frames.py     live pictures (at most fps, downscaled JPEG), raw frames by header, frozen frames
requests.py   the JSON bodies, checked field by field (scribbles rasterised here)
security.py   the token (Bearer header or the page's cookie) and snapshot names
gate.py       the middleware in front of every route: token, cross-site writes, body size, headers
app.py        the Starlette app: the page, static files, the JSON API
server.py     uvicorn on a socket bound first (the printed URL has the real port)
static/       index.html, console.js, console.css: no build step, nothing from a CDN
"""
