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
    const text = (await response.text()).replace(/<[^>]*>/g, "").trim();
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

// a form marked data-wallet-action: the server prepares the transaction, the wallet sends it
async function visdmWalletSubmit(event) {
  const form = event.target;
  if (!form.dataset || !form.dataset.walletAction) return;
  event.preventDefault();
  try {
    const wallet = visdmChosenWallet();
    if (!wallet) throw new Error("no browser wallet found: reload the page with the wallet enabled");
    const tx = await (await visdmPost(form.dataset.walletAction, new FormData(form))).json();
    const hash = await wallet.provider.request({ method: "eth_sendTransaction", params: [tx] });
    const done = await (await visdmPost("/wallet/sent", { hash })).json();
    location.href = done.next;
  } catch (error) {
    visdmWalletError(error);
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
