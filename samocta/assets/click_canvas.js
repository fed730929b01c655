// The click canvas: an OCTA image, its prompt points and their mask, drawn in the browser.
//
// One front end, two back ends. In a live notebook (JupyterLab, Notebook 7, VS Code, Colab) it is an
// anywidget view: each click, Undo and Clear goes to the kernel as a message, Python's PromptState
// applies it, decodes the mask from the cached image embedding and sends points and mask back. In the
// rendered book, with no kernel, renderStatic() runs SAM's prompt encoder and mask decoder in the
// page with onnxruntime-web, on an image embedding computed when the book was built.
//
// Points are (x, y) in image pixels, pixel centres at i + 0.5: a click anywhere in pixel i's square
// gives a value in [i, i + 1). Left click: positive; right click (or the toggle): negative.

const POSITIVE = "#22c55e";
const NEGATIVE = "#ef4444";
const MASK_RGBA = [30, 144, 255, 110];

function button(label, title) {
  const b = document.createElement("button");
  b.textContent = label;
  b.title = title;
  b.className = "samocta-click-button";
  b.style.cssText = "margin-right:6px;padding:2px 10px;font:13px sans-serif;cursor:pointer";
  return b;
}

function drawStar(ctx, x, y, r, color) {
  ctx.beginPath();
  for (let i = 0; i < 10; i++) {
    const a = (Math.PI / 5) * i - Math.PI / 2;
    const rr = i % 2 === 0 ? r : r * 0.45;
    ctx.lineTo(x + rr * Math.cos(a), y + rr * Math.sin(a));
  }
  ctx.closePath();
  ctx.fillStyle = color;
  ctx.strokeStyle = "white";
  ctx.lineWidth = 1.2;
  ctx.fill();
  ctx.stroke();
}

// Builds the canvas and controls in `el`; `host` is the back end:
//   host.width, host.height       image size in pixels
//   host.imageUrl                 the image (a data URL)
//   host.points()                 [[x, y, label], ...]
//   host.apply(action)            {kind: "add", x, y, label} | {kind: "undo"} | {kind: "clear"}
//   host.onUpdate(callback)       callback() after the points or the mask changed
//   host.maskImage()              the mask as an HTMLCanvasElement or HTMLImageElement (or null)
//   host.maskVersion              counts the masks drawn so far (click-to-mask latency waits for the next)
//   host.status                   what decodes the mask, said to the reader
function mount(el, host) {
  const root = document.createElement("div");
  root.className = "samocta-click";
  root.style.cssText = "font:13px sans-serif;max-width:100%";
  const bar = document.createElement("div");
  bar.style.cssText = "margin-bottom:6px;display:flex;align-items:center;flex-wrap:wrap;gap:4px";
  const toggle = button("left click: positive", "what a left click adds (for touchpads, where right clicks do not arrive)");
  const undo = button("Undo", "remove the last change");
  const clear = button("Clear", "remove every point");
  bar.append(toggle, undo, clear);
  const canvas = document.createElement("canvas");
  canvas.className = "samocta-click-canvas";
  canvas.width = host.width;
  canvas.height = host.height;
  const side = Math.min(456, host.width * 1.5);
  canvas.style.cssText = `width:${side}px;max-width:100%;height:auto;image-rendering:pixelated;cursor:crosshair;display:block`;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "OCTA image: click to add prompt points; the mask follows");
  const status = document.createElement("div");
  status.className = "samocta-click-status";
  status.style.cssText = "margin-top:4px;color:#555";
  // the legend of what the canvas draws
  const legend = document.createElement("div");
  legend.className = "samocta-click-legend";
  legend.style.cssText = "margin-top:2px;color:#555";
  legend.innerHTML = `<span style="color:${POSITIVE}">&#9733;</span> positive point (left click) &nbsp; ` +
    `<span style="color:${NEGATIVE};font-weight:bold">&#10005;</span> negative point (right click) &nbsp; ` +
    `<span style="background:rgba(${MASK_RGBA.slice(0, 3).join(",")},${(MASK_RGBA[3] / 255).toFixed(2)});padding:0 7px"></span> the mask`;
  root.append(bar, canvas, status, legend);
  el.replaceChildren(root);

  const image = new Image();
  let negative = false;
  let clickedAt = null;
  let versionAtClick = 0;
  image.onload = () => draw();
  image.src = host.imageUrl;

  function draw() {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (image.complete && image.naturalWidth) ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    const mask = host.maskImage();
    if (mask) ctx.drawImage(mask, 0, 0, canvas.width, canvas.height);
    const r = Math.max(4, canvas.width / 45);
    for (const [x, y, label] of host.points()) {
      if (label === 1) drawStar(ctx, x, y, r, POSITIVE);
      else {
        ctx.strokeStyle = NEGATIVE;
        ctx.lineWidth = 2.5;
        ctx.beginPath();
        ctx.moveTo(x - r * 0.7, y - r * 0.7); ctx.lineTo(x + r * 0.7, y + r * 0.7);
        ctx.moveTo(x + r * 0.7, y - r * 0.7); ctx.lineTo(x - r * 0.7, y + r * 0.7);
        ctx.stroke();
      }
    }
    const pts = host.points();
    const pos = pts.filter((p) => p[2] === 1).length;
    let text = `${pos} positive, ${pts.length - pos} negative; ${host.status}`;
    if (clickedAt !== null && host.maskVersion > versionAtClick) {
      const ms = performance.now() - clickedAt;
      root.dataset.latencyMs = ms.toFixed(1);
      text += `; click to mask ${ms.toFixed(0)} ms`;
      clickedAt = null;
    }
    status.textContent = text;
  }

  function imagePoint(event) {
    const box = canvas.getBoundingClientRect();
    return [((event.clientX - box.left) / box.width) * host.width, ((event.clientY - box.top) / box.height) * host.height];
  }

  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 && event.button !== 2) return;
    event.preventDefault();
    const [x, y] = imagePoint(event);
    const label = event.button === 2 || negative ? 0 : 1;
    clickedAt = performance.now();
    versionAtClick = host.maskVersion;
    host.apply({ kind: "add", x, y, label });
  });
  toggle.addEventListener("click", () => {
    negative = !negative;
    toggle.textContent = `left click: ${negative ? "negative" : "positive"}`;
  });
  undo.addEventListener("click", () => host.apply({ kind: "undo" }));
  clear.addEventListener("click", () => host.apply({ kind: "clear" }));
  host.onUpdate(draw);
  draw();
  return root;
}

function dataUrlImage(url, done) {
  if (!url) return null;
  const img = new Image();
  img.onload = done;
  img.src = url;
  return img;
}

// anywidget: the kernel decodes; the view sends actions and draws what comes back.
function render({ model, el }) {
  let mask = null;
  let version = 0;
  const listeners = [];
  const changed = () => listeners.forEach((f) => f());
  const fresh = () => { version += 1; changed(); };
  const loadMask = () => {
    const url = model.get("mask");
    mask = url ? dataUrlImage(url, fresh) : null;
    if (!url) fresh();
  };
  const host = {
    width: model.get("width"),
    height: model.get("height"),
    imageUrl: model.get("image"),
    points: () => model.get("points"),
    apply: (action) => model.send(action),
    onUpdate: (f) => listeners.push(f),
    maskImage: () => (mask && mask.complete ? mask : null),
    get maskVersion() { return version; },
    get status() { return model.get("status"); },
  };
  model.on("change:points", changed);
  model.on("change:mask", loadMask);
  model.on("change:status", changed);
  loadMask();
  mount(el, host);
}

// The rendered book: onnxruntime-web decodes in the page.
//   config: {width, height, imageUrl, embeddingUrl, embeddingShape, decoderUrl, ortUrl, wasmUrl,
//            points, logitThreshold, feedback, lowResShape, id}
export async function renderStatic(el, config) {
  // the URLs are the page's (relative to it), not this module's
  const url = (u) => new URL(u, document.baseURI).href;
  const status = { text: "loading the browser decoder ..." };
  let points = config.points.map((p) => [p[0], p[1], p[2]]);
  const history = [];
  const listeners = [];
  const maskCanvas = document.createElement("canvas");
  maskCanvas.width = config.width;
  maskCanvas.height = config.height;
  let hasMask = false;
  let version = 0;
  const host = {
    width: config.width,
    height: config.height,
    imageUrl: config.imageUrl,
    points: () => points,
    apply: (action) => {
      if (action.kind === "add") {
        history.push(points.slice());
        points = points.concat([[action.x, action.y, action.label]]);
      } else if (action.kind === "undo") {
        if (history.length) points = history.pop();
      } else if (action.kind === "clear") {
        history.push(points.slice());
        points = [];
      }
      decode();
    },
    onUpdate: (f) => listeners.push(f),
    maskImage: () => (hasMask ? maskCanvas : null),
    get maskVersion() { return version; },
    get status() { return status.text; },
  };
  const root = mount(el, host);
  const changed = () => listeners.forEach((f) => f());
  let session = null;
  let embedding = null;
  let pending = Promise.resolve();
  try {
    const ort = await import(url(config.ortUrl));
    ort.env.wasm.numThreads = 1; // a static host is not cross-origin isolated: no threads
    ort.env.wasm.wasmPaths = { wasm: url(config.wasmUrl) };
    const get = async (u) => {
      const response = await fetch(url(u));
      if (!response.ok) throw new Error(`${u}: HTTP ${response.status}`);
      return response.arrayBuffer();
    };
    const [model, buffer] = await Promise.all([get(config.decoderUrl), get(config.embeddingUrl)]);
    session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
    embedding = new ort.Tensor("float32", new Float32Array(buffer), config.embeddingShape);
    host.ort = ort;
    status.text = "decoded in your browser (onnxruntime-web; no kernel)";
  } catch (error) {
    status.text = `the browser decoder could not start (${error}); the points are shown without a mask`;
  }
  // A mask is a function of the ordered clicks, decoded one after another as samocta.clicks.ClickSession
  // decodes them: click k sees clicks 1..k and, with config.feedback, the low-resolution logits of the decode
  // before it. steps[k] holds the decode after k clicks; a change replays from the longest prefix kept.
  const steps = [{ point: null, masks: null, lowRes: null }];
  const gridSize = config.lowResShape[2] * config.lowResShape[3];
  function samePoint(a, b) {
    return a && b && Math.fround(a[0]) === Math.fround(b[0]) && Math.fround(a[1]) === Math.fround(b[1]) && a[2] === b[2];
  }
  async function step(k) {
    const ort = host.ort;
    const n = k;
    const coords = new Float32Array(n * 2);
    const labels = new Float32Array(n);
    points.slice(0, n).forEach(([x, y, label], i) => { coords[2 * i] = x; coords[2 * i + 1] = y; labels[i] = label; });
    const before = steps[k - 1].lowRes;
    const fed = config.feedback && before !== null;
    const out = await session.run({
      image_embeddings: embedding,
      point_coords: new ort.Tensor("float32", coords, [1, n, 2]),
      point_labels: new ort.Tensor("float32", labels, [1, n]),
      mask_input: new ort.Tensor("float32", fed ? before : new Float32Array(gridSize), config.lowResShape),
      has_mask_input: new ort.Tensor("float32", new Float32Array([fed ? 1 : 0]), [1]),
    });
    return { point: points[k - 1].slice(), masks: out.masks.data, lowRes: out.low_res_mask.data };
  }
  function decode() {
    // one decode at a time, in click order
    pending = pending.then(async () => {
      if (!session || points.length === 0) {
        steps.length = 1;
        hasMask = false;
        root.samoctaMask = null;
        version += 1;
        changed();
        return;
      }
      let kept = 0;
      while (kept < points.length && kept + 1 < steps.length && samePoint(steps[kept + 1].point, points[kept])) kept += 1;
      steps.length = kept + 1;
      const t0 = performance.now();
      for (let k = kept + 1; k <= points.length; k++) steps.push(await step(k));
      root.dataset.decodeMs = (performance.now() - t0).toFixed(2);
      root.dataset.stepsDecoded = String(points.length - kept);
      const logits = steps[points.length].masks;
      const ctx = maskCanvas.getContext("2d");
      const pixels = ctx.createImageData(config.width, config.height);
      const bits = new Uint8Array(config.width * config.height);
      for (let i = 0; i < bits.length; i++) {
        if (logits[i] > config.logitThreshold) {
          bits[i] = 1;
          pixels.data.set(MASK_RGBA, 4 * i);
        }
      }
      ctx.putImageData(pixels, 0, 0);
      hasMask = true;
      root.samoctaMask = { bits, points: points.map((p) => p.slice()) };
      root.dataset.decodes = String(Number(root.dataset.decodes || 0) + 1);
      version += 1;
      changed();
    });
    return pending;
  }
  await decode();
  root.dataset.ready = session ? "browser" : "failed";
  return root;
}

export default { render };
