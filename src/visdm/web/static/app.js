// ViSDM web app: the few scripts a page needs (no build step). Pages work without them.
"use strict";

// Live status: a proposal page subscribes to its server-sent events and swaps the status in.
function visdmLive() {
  const box = document.getElementById("live");
  if (!box || !box.dataset.sse || !window.EventSource) return;
  const source = new EventSource(box.dataset.sse);
  source.addEventListener("status", (event) => {
    box.innerHTML = event.data;
    box.dataset.updates = String(Number(box.dataset.updates || "0") + 1);
  });
  source.addEventListener("end", () => source.close());
}

document.addEventListener("DOMContentLoaded", visdmLive);
