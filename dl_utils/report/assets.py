"""Style and script of the report page, inline in the one HTML file.

The script sorts tables by a clicked header and draws volumes: each viewer's layers are
zlib-compressed uint8 arrays (base64) inflated with the browser's DecompressionStream, and
a slice of each plane is drawn on canvases whenever its slider moves (a 2D image: its one
picture, once). When every viewer is
drawn it sets `data-ready` on <html> (what the browser test waits for)."""
from __future__ import annotations

import json

import numpy as np
from matplotlib import colormaps


def _lut(name: str) -> list[int]:
    """256 RGB entries of a matplotlib colormap, flattened."""
    rgb = colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3]
    return [int(v) for v in np.round(rgb * 255).astype(int).ravel()]


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:12px 20px;background:#fff;border-bottom:1px solid #ddd;position:sticky;top:0;z-index:2}
h1{font-size:20px;margin:0 0 4px} h2{font-size:17px;margin:24px 0 8px} h3{font-size:14px;margin:12px 0 6px}
main{padding:0 20px 40px} section{margin-bottom:8px} section,.viewer{scroll-margin-top:110px} .note{color:#555;margin:2px 0 8px}
nav a{margin-right:4px} .scroll{overflow-x:auto;max-height:70vh;overflow-y:auto}
table{border-collapse:collapse;background:#fff;font-size:13px} caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;position:sticky;top:0} td:first-child,th:first-child{text-align:left}
table.sortable th{cursor:pointer} table.sortable th.asc::after{content:" \\25B2"} table.sortable th.desc::after{content:" \\25BC"}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:4px 0} dt{font-weight:600} dd{margin:0}
.charts{display:flex;flex-wrap:wrap;gap:12px} .charts svg{background:#fff;border:1px solid #ddd}
.viewer{background:#fff;border:1px solid #ddd;padding:6px 10px;margin:10px 0}
.plane{margin:4px 0} .plane-head{font-size:12px;color:#444} .plane-head input{vertical-align:middle;width:240px}
.panels{display:flex;flex-wrap:wrap;gap:6px} figure{margin:0;text-align:center;font-size:11px;color:#444}
canvas{display:block;image-rendering:pixelated;background:#000}
figure.absent{width:120px;padding-top:30px;color:#999}
img{max-width:100%}
"""

_SCRIPT = r"""
"use strict";
(() => {
  const LUTS = {inferno: new Uint8Array(__INFERNO__), gray: new Uint8Array(768)};
  for (let i = 0; i < 256; i++) LUTS.gray.set([i, i, i], 3 * i);
  const AXES = ["z", "y", "x"];

  // sortable tables: numbers (data-v) numerically, text alphabetically, empty cells last
  for (const table of document.querySelectorAll("table.sortable")) {
    table.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {
      const down = th.classList.contains("asc");
      table.querySelectorAll("th").forEach((h) => h.classList.remove("asc", "desc"));
      th.classList.add(down ? "desc" : "asc");
      const body = table.tBodies[0];
      const key = (row) => {
        const cell = row.cells[col];
        return cell && cell.dataset.v !== undefined ? Number(cell.dataset.v) : (cell ? cell.textContent : "");
      };
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        const ex = x === "" || x === "-", ey = y === "" || y === "-";
        if (ex || ey) return ex - ey;
        const order = typeof x === "number" && typeof y === "number" ? (x < y ? -1 : x > y ? 1 : 0)
          : String(x).localeCompare(String(y));
        return down ? -order : order;
      });
      rows.forEach((row) => body.appendChild(row));
    }));
  }

  async function inflate(b64) {
    const text = atob(b64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // a (X, Y, Z) C-order volume seen in one plane: screen column c, row r (top first), slice s;
  // a 2D image (rows, columns, 1) as its file had it: row r of the array on screen row r
  function geometry(shape, spacing, plane, image2d) {
    const [X, Y, Z] = shape;
    if (image2d) return {w: Y, h: X, n: 1, sw: spacing[1], sh: spacing[0], at: (c, r, s) => (r * Y + c) * Z + s};
    if (plane === 0) return {w: X, h: Y, n: Z, sw: spacing[0], sh: spacing[1], at: (c, r, s) => (c * Y + (Y - 1 - r)) * Z + s};
    if (plane === 1) return {w: X, h: Z, n: Y, sw: spacing[0], sh: spacing[2], at: (c, r, s) => (c * Y + s) * Z + (Z - 1 - r)};
    return {w: Y, h: Z, n: X, sw: spacing[1], sh: spacing[2], at: (c, r, s) => (s * Y + c) * Z + (Z - 1 - r)};
  }

  function draw(viewer, plane, s) {
    const {spec, layers} = viewer;
    const g = geometry(spec.shape, spec.spacing, plane, spec.image2d);
    const box = viewer.element.querySelector(`.plane[data-plane="${plane}"]`);
    const label = box.querySelector(".slice-label");
    if (label) label.textContent = `${AXES[plane]} = ${s} / ${g.n - 1}`;
    for (const canvas of box.querySelectorAll("canvas")) {
      const panel = spec.panels[Number(canvas.dataset.panel)];
      const values = layers[panel.layer];
      const outline = panel.outline ? layers[panel.outline] : null;
      const lut = LUTS[panel.cmap];
      canvas.width = g.w;
      canvas.height = g.h;
      canvas.style.width = `${(g.w * g.sw * spec.scale).toFixed(1)}px`;
      canvas.style.height = `${(g.h * g.sh * spec.scale).toFixed(1)}px`;
      const context = canvas.getContext("2d");
      const image = context.createImageData(g.w, g.h);
      const inside = (c, r) => c >= 0 && r >= 0 && c < g.w && r < g.h && outline[g.at(c, r, s)] > 0;
      for (let r = 0; r < g.h; r++) {
        for (let c = 0; c < g.w; c++) {
          const o = 4 * (r * g.w + c);
          const v = values[g.at(c, r, s)];
          image.data[o] = lut[3 * v]; image.data[o + 1] = lut[3 * v + 1]; image.data[o + 2] = lut[3 * v + 2];
          image.data[o + 3] = 255;
          if (outline && inside(c, r) && !(inside(c - 1, r) && inside(c + 1, r) && inside(c, r - 1) && inside(c, r + 1))) {
            image.data[o] = 0; image.data[o + 1] = 255; image.data[o + 2] = 0;
          }
        }
      }
      context.putImageData(image, 0, 0);
    }
  }

  async function start(element) {
    const spec = JSON.parse(document.getElementById(element.dataset.payload).textContent);
    const layers = {};
    for (const [name, b64] of Object.entries(spec.layers)) layers[name] = await inflate(b64);
    const viewer = {element, spec, layers};
    for (const box of element.querySelectorAll(".plane")) {
      const plane = Number(box.dataset.plane);
      const input = box.querySelector("input.slice");  // none for a 2D image: one picture
      if (input) input.addEventListener("input", () => draw(viewer, plane, Number(input.value)));
      draw(viewer, plane, input ? Number(input.value) : 0);
    }
  }

  Promise.all(Array.from(document.querySelectorAll(".viewer"), start)).then(
    () => { document.documentElement.dataset.ready = "true"; },
    (error) => { document.documentElement.dataset.ready = "error"; console.error("report: a viewer failed", error); });
})();
"""

SCRIPT = _SCRIPT.replace("__INFERNO__", json.dumps(_lut("inferno")))
