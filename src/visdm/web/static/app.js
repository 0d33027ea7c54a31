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

// Browser wallets: EIP-6963 discovery of injected EIP-1193 providers. The server prepares
// typed data and transactions; the wallet signs and sends them; the server never sees a key.
const visdmWallets = new Map();

function visdmCsrf() {
  const field = document.querySelector("input[name=csrf]");
  const box = document.getElementById("wallets");
  return field ? field.value : (box ? box.dataset.csrf : "");
}

async function visdmPost(url, fields) {
  const body = new URLSearchParams(fields);
  if (!body.has("csrf")) body.set("csrf", visdmCsrf());
  const response = await fetch(url, { method: "POST", body, credentials: "same-origin" });
  if (!response.ok) {
    // the server's one-line error is HTML-escaped: read it as the page would show it
    const parsed = new DOMParser().parseFromString(await response.text(), "text/html");
    const text = (parsed.body.textContent || "").trim();
    throw new Error(text || `${url} answered ${response.status}`);
  }
  return response;
}

function visdmWalletError(error) {
  let line = document.getElementById("wallet-error");
  if (!line) {
    line = document.createElement("p");
    line.id = "wallet-error";
    line.className = "error";
    line.setAttribute("role", "alert");
    document.querySelector("main").prepend(line);
  }
  const text = String(error && error.message ? error.message : error);
  line.textContent = text.startsWith("error:") ? text : `error: ${text}`;
}

function visdmChosenWallet() {
  const chosen = visdmWallets.get(sessionStorage.getItem("visdm-wallet") || "");
  return chosen || visdmWallets.values().next().value;
}

async function visdmConnect(detail) {
  try {
    const [address] = await detail.provider.request({ method: "eth_requestAccounts" });
    const typed = await (await visdmPost("/wallet/challenge", {})).json();
    const signature = await detail.provider.request({
      method: "eth_signTypedData_v4",
      params: [address, JSON.stringify(typed)],
    });
    await visdmPost("/wallet/connect", { address, signature });
    sessionStorage.setItem("visdm-wallet", detail.info.rdns);
    location.reload();
  } catch (error) {
    visdmWalletError(error);
  }
}

function visdmRenderWallets() {
  const box = document.getElementById("wallets");
  if (!box) return;
  box.replaceChildren();
  let index = 0;
  for (const detail of visdmWallets.values()) {
    const button = document.createElement("button");
    button.type = "button";
    button.id = `wallet-connect-${index++}`;
    button.textContent = `Connect ${detail.info.name}`;
    button.addEventListener("click", () => visdmConnect(detail));
    box.append(button);
  }
}

// The most steps one wallet action takes (the server answers "done" long before this).
const VISDM_MAX_STEPS = 8;

// One line per form that says which step the wallet is on, read out as it changes.
function visdmProgress(form) {
  let line = form.querySelector(".wallet-progress");
  if (!line) {
    line = document.createElement("p");
    line.className = "wallet-progress";
    line.setAttribute("role", "status");
    line.setAttribute("aria-live", "polite");
    form.append(line);
  }
  return line;
}

// A form marked data-wallet-action is a loop of steps: the server reads the chain and answers
// the next transaction to send, typed data to sign, or done; the wallet does each step and the
// server is asked again. Steps come from chain state, so a reload or a rejected prompt resumes.
async function visdmWalletSubmit(event) {
  const form = event.target;
  if (!form.dataset || !form.dataset.walletAction) return;
  event.preventDefault();
  const progress = visdmProgress(form);
  const buttons = [...form.querySelectorAll("button")];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const wallet = visdmChosenWallet();
    if (!wallet) throw new Error("no browser wallet found: reload the page with the wallet enabled");
    for (let n = 0; n < VISDM_MAX_STEPS; n++) {
      const fields = new FormData(form);
      fields.set("step", String(n));
      progress.textContent = `step ${n + 1}: asking the server what comes next`;
      const step = await (await visdmPost(form.dataset.walletAction, fields)).json();
      if (step.kind === "done") {
        progress.textContent = "done";
        location.href = step.next;
        return;
      }
      progress.textContent = `step ${n + 1}: ${step.label}: confirm in the wallet`;
      if (step.kind === "tx") {
        const hash = await wallet.provider.request({ method: "eth_sendTransaction", params: [step.tx] });
        progress.textContent = `step ${n + 1}: ${step.label}: waiting for the chain`;
        await visdmPost("/wallet/sent", { hash, label: step.label });
      } else if (step.kind === "typed") {
        const signature = await wallet.provider.request({
          method: "eth_signTypedData_v4",
          params: [step.signer, JSON.stringify(step.typed)],
        });
        const signed = new FormData(form);
        signed.set("signature", signature);
        progress.textContent = `step ${n + 1}: ${step.label}: sent`;
        await visdmPost(step.post, signed);
      } else {
        throw new Error(`the server answered an unknown step ${step.kind}`);
      }
    }
    throw new Error(`the action took more than ${VISDM_MAX_STEPS} steps: reload the page to see where it stands`);
  } catch (error) {
    progress.textContent = "stopped";
    visdmWalletError(error);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

window.addEventListener("eip6963:announceProvider", (event) => {
  visdmWallets.set(event.detail.info.rdns, event.detail);
  visdmRenderWallets();
});
document.addEventListener("submit", visdmWalletSubmit);
document.addEventListener("DOMContentLoaded", () => {
  window.dispatchEvent(new Event("eip6963:requestProvider"));
});
