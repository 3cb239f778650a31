"""The console's web app (Starlette): the page, its static files and the JSON API (docs/teaching.md,
"The teaching console"). Every handler turns the request into one call on the target's public ROS
interface through `ConsoleNode`; nothing here touches the engine.

Contract of every API route: the body (at most max_body_bytes) is checked field by field before
anything reaches the node (400 and the reason otherwise); a request the node refuses answers 409
with the node's own `message`, and the node changed nothing; errors are JSON `{"error": ...}`.
In front of every route, gate.py: without the token every request gets 401 and nothing happens;
no CORS headers are ever sent, so other sites' scripts cannot read an answer.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
from geometry_msgs.msg import Point32
from PIL import Image as PILImage
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rns_ros import srv
from rns_ros.console import security
from rns_ros.console.frames import FrozenFrames, jpeg
from rns_ros.console.gate import UNAUTHORIZED_PAGE, RequestGate
from rns_ros.console.node import ConsoleNode, NoAnswer, Unreachable
from rns_ros.console.requests import (BadRequest, parse_exemplar, parse_freeze, parse_memory,
                                      parse_new_classes)
from rns_ros.ros.conversions import mask_from_image, mask_image, rgb_to_image

STATIC = Path(__file__).resolve().parent / "static"
PREVIEW_RGBA = (0, 229, 255, 150)  # how a previewed mask is tinted on the frozen frame
MAX_WAIT_S = 30.0  # longest long-poll of a picture
class Refusal(Exception):
    """An API error: HTTP status and the reason (sent as {"error": reason})."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def class_json(info) -> dict:
    """One ClassInfo as the API shows it (colour as #rrggbb, the overlay's)."""
    rgb = [int(round(getattr(info.color, c) * 255)) for c in "rgb"]
    return {"id": int(info.id), "name": info.name, "description": info.description,
            "has_text": bool(info.has_text), "exemplar_count": int(info.exemplar_count),
            "exemplar_ids": [int(e) for e in info.exemplar_ids], "color": "#{:02x}{:02x}{:02x}".format(*rgb)}


def class_map_json(class_map) -> dict:
    return {"classes": [class_json(c) for c in class_map.classes], "support_version": int(class_map.support_version),
            "backbone": class_map.backbone}


def mask_png(mask: np.ndarray) -> str:
    """A data: URL of a PNG the frame's size: mask pixels tinted PREVIEW_RGBA, the rest transparent."""
    rgba = np.zeros(mask.shape + (4,), np.uint8)
    rgba[mask] = PREVIEW_RGBA
    out = io.BytesIO()
    PILImage.fromarray(rgba, "RGBA").save(out, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


class ConsoleApi:
    """The routes, over a ConsoleNode and the frozen frames."""

    def __init__(self, node: ConsoleNode, token: str):
        self.node, self.token = node, token
        self.config = node.config
        self.frozen = FrozenFrames()

    # ------------------------------------------------------------------ helpers
    async def body(self, request: Request):
        raw = await request.body()
        try:
            return json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from exc

    async def answer(self, service: str, ros_request):
        """The node's response, or Refusal(409) with its message when it refused."""
        response = await self.node.call(service, ros_request)
        if not response.success:
            raise Refusal(409, response.message)
        return response

    # ------------------------------------------------------------------ page
    async def page(self, request: Request):
        given = request.query_params.get("token")
        if given is not None:
            if not security.token_matches(given, self.token):
                return HTMLResponse(UNAUTHORIZED_PAGE, 401)
            response = RedirectResponse("/", 303)  # the token leaves the address bar and history
            response.set_cookie(security.COOKIE, given, httponly=True, samesite="strict", path="/")
            return response
        return FileResponse(STATIC / "index.html", media_type="text/html")

    # ------------------------------------------------------------------ status, cameras, pictures
    async def status(self, request: Request):
        node = self.node
        statuses = {name: {"level": int.from_bytes(s.level, "little") if isinstance(s.level, bytes) else int(s.level),
                           "message": s.message, "values": {kv.key: kv.value for kv in s.values}}
                    for name, s in sorted(node.statuses.items())}
        cmap = node.class_map
        return JSONResponse({
            "target": self.config.target,
            "reachable": node.reachable(),
            "graph_error": node.graph_error,
            "cameras": sorted(node.cameras),
            "support_version": int(cmap.support_version) if cmap is not None else None,
            "diagnostics": statuses,
            "subscribed": node.subscribed(),
            "snapshots_dir": str(self.config.snapshot_root()),
        })

    async def cameras(self, request: Request):
        node = self.node
        node.refresh_graph()
        return JSONResponse({"cameras": [{"name": name, "overlay_topic": topic} for name, topic in sorted(node.cameras.items())],
                             "inputs": sorted(node.input_topics)})

    def _feed(self, camera: str):
        try:
            return self.node.watch(camera)
        except KeyError:
            raise Refusal(404, f"no camera {camera!r}: the node publishes overlays for {sorted(self.node.cameras)}"
                               + (f" ({self.node.graph_error})" if self.node.graph_error else "")) from None

    async def picture(self, request: Request):
        feed = self._feed(request.path_params["camera"])
        try:
            after = int(request.query_params.get("after", "0"))
            wait = float(request.query_params.get("wait", "10"))
        except ValueError:
            raise BadRequest("after must be an integer (the last seq the page has) and wait a number of seconds")
        if after < 0 or not 0 <= wait <= MAX_WAIT_S:
            raise BadRequest(f"after must be >= 0 and wait in [0, {MAX_WAIT_S:g}] s")
        picture = await feed.next_picture(after, wait)
        if picture is None:
            return Response(status_code=204)
        sec, nanosec, frame_id = picture.key
        return Response(picture.jpeg, media_type="image/jpeg", headers={
            "x-seq": str(picture.seq), "x-stamp": f"{sec}.{nanosec:09d}", "x-frame-id": frame_id,
            "x-frame-width": str(picture.width), "x-frame-height": str(picture.height),
            "x-teachable": "1" if picture.raw is not None else "0"})

    # ------------------------------------------------------------------ frozen frames
    async def freeze(self, request: Request):
        req = parse_freeze(await self.body(request))
        feed = self._feed(req.camera)
        picture = feed.picture(req.seq)
        if picture is None:
            raise Refusal(409, f"picture {req.seq} of camera {req.camera!r} is no longer kept; freeze a newer one")
        if picture.raw is None:
            raise Refusal(409, "the console did not receive the camera frame of this picture (it subscribes to the "
                               "node's inputs only while a page watches, and keeps frame_buffer_mb of them); "
                               "freeze the next picture")
        frozen = self.frozen.freeze(req.camera, picture.raw)
        sec, nanosec, frame_id = picture.key
        return JSONResponse({"frame": frozen.id, "camera": req.camera, "stamp": f"{sec}.{nanosec:09d}",
                             "frame_id": frame_id, "width": int(frozen.rgb.shape[1]),
                             "height": int(frozen.rgb.shape[0])}, 201)

    def _frozen(self, frame_id: str):
        frozen = self.frozen.get(frame_id)
        if frozen is None:
            raise Refusal(404, f"no frozen frame {frame_id!r} (frames are forgotten once released or when many "
                               "newer ones were frozen): freeze the view again")
        return frozen

    async def frame_picture(self, request: Request):
        frozen = self._frozen(request.path_params["frame"])
        return Response(jpeg(frozen.rgb, self.config.max_width, self.config.jpeg_quality), media_type="image/jpeg")

    async def release(self, request: Request):
        if not self.frozen.release(request.path_params["frame"]):
            raise Refusal(404, f"no frozen frame {request.path_params['frame']!r}")
        return JSONResponse({"released": request.path_params["frame"]})

    # ------------------------------------------------------------------ classes
    async def classes(self, request: Request):
        if self.node.class_map is None:
            response = await self.answer("list_classes", srv.ListClasses.Request())
            return JSONResponse(class_map_json(response.class_map))
        return JSONResponse(class_map_json(self.node.class_map))

    async def add_classes(self, request: Request):
        req = parse_new_classes(await self.body(request))
        response = await self.answer("add_classes", srv.AddClasses.Request(names=list(req.names),
                                                                          descriptions=list(req.descriptions)))
        return JSONResponse({"class_ids": [int(i) for i in response.class_ids], "message": response.message,
                             **class_map_json(response.class_map)}, 201)

    def _id(self, request: Request, what: str) -> int:
        text = request.path_params["id"]
        if not text.isdigit() or len(text) > 20:
            raise BadRequest(f"{what} id must be a non-negative integer, got {text!r}")
        return int(text)

    async def remove_class(self, request: Request):
        class_id = self._id(request, "class")
        listed = await self.answer("list_classes", srv.ListClasses.Request())
        names = {int(c.id): c.name for c in listed.class_map.classes}
        if class_id not in names:
            raise Refusal(404, f"no class with id {class_id}; ids: {sorted(names)}")
        response = await self.answer("remove_classes", srv.RemoveClasses.Request(names=[names[class_id]]))
        return JSONResponse({"message": response.message, **class_map_json(response.class_map)})

    # ------------------------------------------------------------------ exemplars
    async def add_exemplar(self, request: Request):
        body = await self.body(request)
        frozen = self._frozen(body.get("frame") if isinstance(body, dict) and isinstance(body.get("frame"), str) else "")
        req = parse_exemplar(body, frozen.rgb.shape[:2])
        if req.camera != frozen.camera:
            raise BadRequest(f"frame {req.frame} was frozen on camera {frozen.camera!r}, not {req.camera!r}")
        header = frozen.msg.header
        ros = srv.AddExemplar.Request(class_name=req.class_name, create_class=req.create_class,
                                      image=rgb_to_image(frozen.rgb, header), return_mask=req.preview)
        ros.dry_run = req.preview  # an attribute, not a keyword: a type without the field fails here, loudly
        if req.kind == "box":
            ros.box = [float(v) for v in req.box]
        elif req.kind == "points":
            ros.points = [Point32(x=float(x), y=float(y), z=0.0) for x, y in req.points]
            ros.point_labels = list(req.point_labels)
        elif req.kind == "scribble":
            ros.scribble = mask_image(req.scribble, header)
        else:
            preview = self.frozen.preview(req.preview_id)
            if preview is None or preview.frame != req.frame:
                raise Refusal(404, f"no preview {req.preview_id!r} of frame {req.frame}: preview again")
            ros.mask = mask_image(preview.mask, header)
        response = await self.answer("add_exemplar", ros)
        if req.preview:
            mask = mask_from_image(response.mask)
            preview = self.frozen.add_preview(req.frame, req.class_name, mask)
            return JSONResponse({"preview": True, "preview_id": preview.id, "pixels": int(mask.sum()),
                                 "width": int(mask.shape[1]), "height": int(mask.shape[0]),
                                 "mask_png": mask_png(mask), "message": response.message})
        if req.kind == "preview":
            self.frozen.forget_preview(req.preview_id)
        stamp = response.frame_header.stamp
        return JSONResponse({"exemplar_id": int(response.exemplar_id), "class_id": int(response.class_id),
                             "message": response.message,
                             "frame": {"stamp": f"{stamp.sec}.{stamp.nanosec:09d}",
                                       "frame_id": response.frame_header.frame_id,
                                       "width": int(response.frame_width), "height": int(response.frame_height)},
                             **class_map_json(response.class_map)}, 201)

    async def remove_exemplar(self, request: Request):
        exemplar_id = self._id(request, "exemplar")
        response = await self.answer("remove_exemplars", srv.RemoveExemplars.Request(exemplar_ids=[exemplar_id]))
        return JSONResponse({"message": response.message, **class_map_json(response.class_map)})

    # ------------------------------------------------------------------ memory
    async def snapshots(self, request: Request):
        root = self.config.snapshot_root()
        return JSONResponse({"directory": str(root), "snapshots": security.list_snapshots(root)})

    def _snapshot(self, name: str, must_exist: bool) -> Path:
        root = self.config.snapshot_root()
        try:
            if not must_exist:
                root.mkdir(parents=True, exist_ok=True)
            return security.snapshot_path(root, name, must_exist=must_exist)
        except security.BadSnapshot as exc:
            raise BadRequest(str(exc)) from exc
        except OSError as exc:
            raise Refusal(409, f"cannot use the snapshot directory {root}: {exc}") from exc

    async def save(self, request: Request):
        req = parse_memory(await self.body(request), load=False)
        directory = str(self._snapshot(req.snapshot, must_exist=False)) if req.snapshot else ""
        response = await self.answer("save_support", srv.SaveSupport.Request(directory=directory))
        return JSONResponse({"message": response.message, "snapshot": req.snapshot, "directory": response.directory})

    async def load(self, request: Request):
        req = parse_memory(await self.body(request), load=True)
        directory = self._snapshot(req.snapshot, must_exist=True)
        response = await self.answer("load_support", srv.LoadSupport.Request(directory=str(directory), merge=req.merge))
        return JSONResponse({"message": response.message, **class_map_json(response.class_map)})


async def _refusal(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, Refusal):
        return JSONResponse({"error": exc.reason}, exc.status)
    if isinstance(exc, BadRequest):
        return JSONResponse({"error": str(exc)}, 400)
    if isinstance(exc, Unreachable):
        return JSONResponse({"error": str(exc)}, 503)
    if isinstance(exc, NoAnswer):
        return JSONResponse({"error": str(exc)}, 504)
    if isinstance(exc, HTTPException):  # 404 of an unknown path, 405, 413 of a body without a length ...
        return JSONResponse({"error": exc.detail}, exc.status_code)
    raise exc


def build_app(node: ConsoleNode, token: str) -> Starlette:
    """The web app over `node`; every request must carry `token`."""
    api = ConsoleApi(node, token)
    routes = [
        Route("/", api.page),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/status", api.status),
        Route("/api/cameras", api.cameras),
        Route("/api/cameras/{camera}/picture", api.picture),
        Route("/api/frames", api.freeze, methods=["POST"]),
        Route("/api/frames/{frame}/picture", api.frame_picture),
        Route("/api/frames/{frame}", api.release, methods=["DELETE"]),
        Route("/api/classes", api.classes, methods=["GET"]),
        Route("/api/classes", api.add_classes, methods=["POST"]),
        Route("/api/classes/{id}", api.remove_class, methods=["DELETE"]),
        Route("/api/exemplars", api.add_exemplar, methods=["POST"]),
        Route("/api/exemplars/{id}", api.remove_exemplar, methods=["DELETE"]),
        Route("/api/snapshots", api.snapshots),
        Route("/api/memory/save", api.save, methods=["POST"]),
        Route("/api/memory/load", api.load, methods=["POST"]),
    ]
    handlers = {cls: _refusal for cls in (Refusal, BadRequest, Unreachable, NoAnswer, HTTPException)}
    middleware = [Middleware(RequestGate, token=token, max_body_bytes=node.config.max_body_bytes),
                  Middleware(RequestBodyLimitMiddleware, max_body_size=node.config.max_body_bytes)]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.api = api
    return app
