// Drawing a result on the canvas: plain mode = a dot and the name at each sight; debug
// mode = the box, the name and the score. Every label is measured and kept fully inside
// the image (a smaller font when it is wider than the image, then clamped to the edges).

const MAX_WIDTH = 960;
const ACCENT = "#e4572e";
const PAD = 4;

const clamp = (value, low, high) => Math.min(Math.max(value, low), Math.max(low, high));
const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

/** Fit `text` in `maxWidth`: shrink the font down to 10 px, then cut it with an ellipsis. */
function fitText(context, text, fontSize, maxWidth) {
  let size = fontSize;
  for (;;) {
    context.font = `600 ${size}px system-ui, sans-serif`;
    if (context.measureText(text).width <= maxWidth || size <= 10) break;
    size -= 1;
  }
  let shown = text;
  while (shown.length > 1 && context.measureText(shown).width > maxWidth) {
    shown = `${shown.slice(0, -2)}…`;
  }
  return { shown, size };
}

/** Draw `source` and its detections; returns the label rectangles (canvas pixels). */
export function drawScene(canvas, source, width, height, detections, { debug, nameOf }) {
  const scale = Math.min(1, MAX_WIDTH / width);
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  const W = canvas.width;
  const H = canvas.height;
  const context = canvas.getContext("2d");
  context.drawImage(source, 0, 0, W, H);
  const shortSide = Math.min(W, H);
  // Sizes in screen pixels: the canvas is often shown smaller than it is (a phone).
  const shownWidth = canvas.getBoundingClientRect().width;
  const perScreenPixel = shownWidth > 0 ? W / shownWidth : 1;
  const fontSize = clamp(Math.round(16 * perScreenPixel), 10, Math.max(10, Math.round(shortSide / 6)));
  context.textBaseline = "top";
  const rects = [];
  for (const { label, score, box } of detections) {
    const [x1, y1, x2, y2] = [box[0] * W, box[1] * H, box[2] * W, box[3] * H];
    const name = nameOf(label);
    const text = debug ? `${name} ${score.toFixed(2)}` : name;
    const { shown, size } = fitText(context, text, fontSize, W - 2 * PAD);
    const textWidth = context.measureText(shown).width;
    const w = Math.min(W, textWidth + 2 * PAD);
    const h = Math.min(H, size + 2 * PAD);
    let x;
    let y;
    if (debug) {
      context.lineWidth = Math.max(2, Math.round(2 * perScreenPixel));
      context.strokeStyle = ACCENT;
      context.strokeRect(x1, y1, x2 - x1, y2 - y1);
      x = x1;
      y = y1 >= h ? y1 - h : y1; // above the box when there is room, else inside it
    } else {
      const cx = (x1 + x2) / 2;
      const cy = (y1 + y2) / 2;
      const radius = Math.max(4, Math.round(7 * perScreenPixel));
      context.beginPath();
      context.arc(cx, cy, radius, 0, 2 * Math.PI);
      context.fillStyle = ACCENT;
      context.fill();
      context.lineWidth = Math.max(2, Math.round(2 * perScreenPixel));
      context.strokeStyle = "#fff";
      context.stroke();
      x = cx + radius + 4;
      y = cy - h / 2;
      if (x + w > W) x = cx - radius - 4 - w; // left of the dot when the right is short
    }
    const rect = { x: clamp(x, 0, W - w), y: clamp(y, 0, H - h), w, h, text: shown };
    // Several sights: move a label down (or up) rather than over another one.
    for (let tries = 0; tries < 8 && rects.some((other) => overlaps(rect, other)); tries++) {
      rect.y = rect.y + h + 2 <= H - h ? rect.y + h + 2 : clamp(rect.y - 2 * h, 0, H - h);
    }
    context.fillStyle = "rgba(0, 0, 0, 0.75)";
    context.fillRect(rect.x, rect.y, rect.w, rect.h);
    context.fillStyle = "#fff";
    context.font = `600 ${size}px system-ui, sans-serif`;
    context.fillText(shown, rect.x + PAD, rect.y + PAD);
    rects.push(rect);
  }
  return { width: W, height: H, rects };
}
