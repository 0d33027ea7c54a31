// A folder dropped on the provider's page (or chosen with the folder picker) is staged on this
// machine file by file, then added by the form's buttons (field "upload"). Without scripts the
// form takes a folder path instead. Each refused file is listed with the server's reason.
"use strict";

const VISDM_PARALLEL_UPLOADS = 3;

async function visdmWalk(entry, prefix, out) {
  if (entry.isFile) {
    out.push([prefix + entry.name, await new Promise((ok, fail) => entry.file(ok, fail))]);
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
      if (!batch.length) break;
      for (const child of batch) await visdmWalk(child, `${prefix}${entry.name}/`, out);
    }
  }
}

// the server's one-line refusal, as text (it comes as an HTML fragment)
function visdmReason(text) {
  const shown = new DOMParser().parseFromString(text, "text/html").body.textContent || "";
  return shown.replace(/^\s*error:\s*/, "").trim();
}

function visdmSize(bytes) {
  return bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

async function visdmStage(zone, files) {
  const status = document.getElementById("drop-status");
  const refused = document.getElementById("drop-refused");
  refused.replaceChildren();
  if (!files.length) {
    status.textContent = "the folder is empty: nothing to stage";
    return;
  }
  // a dropped or chosen folder arrives with its own name first: stage what is inside it
  const top = files[0][0].split("/")[0];
  const oneFolder = files.every(([path]) => path.includes("/") && path.split("/")[0] === top);
  let opened;
  try {
    const name = oneFolder ? top : "dropped files";
    opened = await (await visdmPost("/provider/uploads", { csrf: zone.dataset.csrf, name })).json();
  } catch (error) {
    status.textContent = `error: ${error.message}`;
    return;
  }
  let staged = 0, bytes = 0, bad = 0, next = 0;
  const show = () => {
    status.textContent = `${staged} of ${files.length} files staged ` +
      `(${visdmSize(bytes)})${bad ? `, ${bad} refused` : ""}`;
  };
  const worker = async () => {
    while (next < files.length) {
      const [path, file] = files[next++];
      const rel = oneFolder ? path.split("/").slice(1).join("/") : path;
      const response = await fetch(
        `/provider/uploads/${opened.upload}/files?path=${encodeURIComponent(rel)}`,
        { method: "PUT", body: file, credentials: "same-origin",
          headers: { "X-CSRF-Token": zone.dataset.csrf } });
      if (response.ok) {
        staged += 1;
        bytes += file.size;
      } else {
        bad += 1;
        const line = document.createElement("li");
        const reason = visdmReason(await response.text());
        line.textContent = reason.includes(rel) ? reason : `${rel}: ${reason}`;
        refused.append(line);
      }
      show();
    }
  };
  await Promise.all(Array.from({ length: VISDM_PARALLEL_UPLOADS }, worker));
  document.getElementById("upload-id").value = opened.upload;
  const directory = document.getElementById("directory");
  directory.required = false;
  directory.disabled = true;
  zone.dataset.staged = String(staged);
  status.textContent += `: add ${staged ? "them" : "nothing yet"} with the buttons below`;
}

function visdmDropInit() {
  const zone = document.getElementById("drop");
  if (!zone) return;
  zone.hidden = false;
  const input = document.getElementById("folder-input");
  input.addEventListener("change", () =>
    visdmStage(zone, [...input.files].map((f) => [f.webkitRelativePath || f.name, f])));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const entries = [...event.dataTransfer.items]
      .map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry())
      .filter(Boolean);
    const files = [];
    for (const entry of entries) await visdmWalk(entry, "", files);
    visdmStage(zone, files);
  });
}

document.addEventListener("DOMContentLoaded", visdmDropInit);
