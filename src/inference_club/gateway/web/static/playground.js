// The playground: calls this gateway's /v1 API with the session's playground key, exactly
// as any OpenAI client would, and shows what comes back (streamed text, audio, images).
"use strict";

(() => {
  const root = document.getElementById("playground");
  if (!root) return;
  const key = root.dataset.key;
  const $ = (id) => document.getElementById(id);

  // -- tabs -------------------------------------------------------------------------------
  const tabs = root.querySelectorAll("[data-tab]");
  function showTab(name) {
    for (const tab of tabs) {
      const selected = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", String(selected));
      if (selected) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
      $("panel-" + tab.dataset.tab).hidden = !selected;
    }
  }
  for (const tab of tabs) {
    tab.addEventListener("click", (event) => {
      event.preventDefault();
      showTab(tab.dataset.tab);
      history.replaceState(null, "", "/playground?tab=" + tab.dataset.tab);
    });
  }

  // -- calling /v1 ------------------------------------------------------------------------
  async function callApi(path, options) {
    const headers = Object.assign({ Authorization: "Bearer " + key }, options.headers || {});
    const response = await fetch("/v1" + path, Object.assign({}, options, { headers }));
    if (!response.ok) throw new Error(await describeError(response));
    return response;
  }

  async function describeError(response) {
    let message = response.status + " " + response.statusText;
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch (ignored) {
      // Not JSON: the status line says enough.
    }
    if (response.status === 429) {
      const wait = response.headers.get("retry-after");
      if (wait) message += " Try again in " + wait + " s.";
    }
    if (response.status === 401) message += " Reload the page to get a fresh playground key.";
    return message;
  }

  function limitText(response) {
    const remaining = response.headers.get("x-ratelimit-remaining");
    const limit = response.headers.get("x-ratelimit-limit");
    return remaining !== null && limit !== null ? remaining + "/" + limit + " requests left this minute" : "";
  }

  // Server-sent events: blocks separated by a blank line, payload on "data:" lines.
  async function* serverSentEvents(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) yield data;
      }
    }
  }

  // -- chat -------------------------------------------------------------------------------
  const chat = { messages: [], controller: null };

  function addBubble(role, text) {
    const bubble = document.createElement("div");
    bubble.className = "bubble " + role;
    bubble.dataset.role = role;
    bubble.textContent = text;
    $("chat-log").appendChild(bubble);
    bubble.scrollIntoView({ block: "end" });
    return bubble;
  }

  async function sendChat() {
    const input = $("chat-input");
    const text = input.value.trim();
    const model = $("chat-model");
    if (!text || !model || chat.controller) return;
    input.value = "";
    chat.messages.push({ role: "user", content: text });
    addBubble("user", text);
    const reply = addBubble("assistant", "");
    reply.classList.add("streaming");
    const system = $("chat-system").value.trim();
    const messages = system ? [{ role: "system", content: system }, ...chat.messages] : chat.messages;
    chat.controller = new AbortController();
    $("chat-stop").hidden = false;
    $("chat-send").disabled = true;
    $("chat-meta").textContent = "";
    const started = performance.now();
    let content = "";
    try {
      const response = await callApi("/chat/completions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          model: model.value,
          messages,
          stream: true,
          stream_options: { include_usage: true },
        }),
        signal: chat.controller.signal,
      });
      const limits = limitText(response);
      let usage = null;
      for await (const data of serverSentEvents(response)) {
        if (data === "[DONE]") break;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || "the stream failed");
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          content += delta.content;
          reply.textContent = content;
        }
        if (chunk.usage) usage = chunk.usage;
      }
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const tokens = usage ? usage.prompt_tokens + " + " + usage.completion_tokens + " tokens · " : "";
      $("chat-meta").textContent = tokens + seconds + " s" + (limits ? " · " + limits : "");
    } catch (error) {
      if (error.name === "AbortError") {
        $("chat-meta").textContent = "Stopped.";
      } else {
        reply.classList.add("failed");
        $("chat-meta").textContent = "Error: " + error.message;
      }
    } finally {
      reply.classList.remove("streaming");
      if (content) chat.messages.push({ role: "assistant", content });
      else chat.messages.pop();
      chat.controller = null;
      $("chat-stop").hidden = true;
      $("chat-send").disabled = false;
    }
  }

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendChat();
  });
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      sendChat();
    }
  });
  $("chat-stop").addEventListener("click", () => chat.controller && chat.controller.abort());
  $("chat-clear").addEventListener("click", () => {
    if (chat.controller) chat.controller.abort();
    chat.messages = [];
    $("chat-log").replaceChildren();
    $("chat-meta").textContent = "";
  });

  // -- text to speech ---------------------------------------------------------------------
  async function fillVoices() {
    const model = $("speech-model");
    const select = $("speech-voice");
    if (!model) return;
    let voices = (model.selectedOptions[0].dataset.voices || "").split(",").filter(Boolean);
    if (!voices.length) {
      try {
        const response = await callApi("/audio/voices?model=" + encodeURIComponent(model.value), {});
        voices = (await response.json()).voices || [];
      } catch (ignored) {
        voices = [];
      }
    }
    select.replaceChildren(new Option("default", ""), ...voices.map((voice) => new Option(voice, voice)));
  }
  if ($("speech-model")) {
    $("speech-model").addEventListener("change", fillVoices);
    fillVoices();
  }

  let speechUrl = null;
  $("speech-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const model = $("speech-model");
    if (!model) return;
    const meta = $("speech-meta");
    meta.textContent = "Synthesizing…";
    const body = { model: model.value, input: $("speech-input").value, response_format: $("speech-format").value };
    if ($("speech-voice").value) body.voice = $("speech-voice").value;
    try {
      const response = await callApi("/audio/speech", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const audio = await response.blob();
      if (speechUrl) URL.revokeObjectURL(speechUrl);
      speechUrl = URL.createObjectURL(audio);
      const player = $("speech-audio");
      player.src = speechUrl;
      player.hidden = false;
      player.play().catch(() => {});
      meta.textContent = (audio.size / 1024).toFixed(1) + " KiB · saved in your history";
    } catch (error) {
      meta.textContent = "Error: " + error.message;
    }
  });

  // -- speech to text ---------------------------------------------------------------------
  let recorded = null;
  let recorder = null;
  $("record-start").addEventListener("click", async () => {
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      $("transcribe-meta").textContent = "This browser cannot record here (recording needs HTTPS).";
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
      recorder.addEventListener("stop", () => {
        for (const track of stream.getTracks()) track.stop();
        recorded = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
        const preview = $("record-preview");
        preview.src = URL.createObjectURL(recorded);
        preview.hidden = false;
        $("transcribe-meta").textContent = "Recorded " + (recorded.size / 1024).toFixed(1) + " KiB.";
      });
      recorder.start();
      $("record-start").hidden = true;
      $("record-stop").hidden = false;
      $("transcribe-meta").textContent = "Recording…";
    } catch (error) {
      $("transcribe-meta").textContent = "Cannot record: " + error.message;
    }
  });
  $("record-stop").addEventListener("click", () => {
    if (recorder && recorder.state !== "inactive") recorder.stop();
    $("record-start").hidden = false;
    $("record-stop").hidden = true;
  });

  $("transcribe-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const model = $("transcribe-model");
    if (!model) return;
    const file = $("transcribe-file").files[0];
    const audio = file || recorded;
    const meta = $("transcribe-meta");
    if (!audio) {
      meta.textContent = "Choose a file or record something first.";
      return;
    }
    const form = new FormData();
    form.append("model", model.value);
    form.append("file", audio, file ? file.name : "recording.webm");
    if ($("transcribe-language").value.trim()) form.append("language", $("transcribe-language").value.trim());
    meta.textContent = "Transcribing…";
    try {
      const response = await callApi("/audio/transcriptions", { method: "POST", body: form });
      const result = await response.json();
      const output = $("transcript");
      output.textContent = result.text || "(no speech recognised)";
      output.hidden = false;
      const seconds = result.usage && result.usage.seconds;
      meta.textContent = seconds ? seconds.toFixed(1) + " s of audio" : "";
    } catch (error) {
      meta.textContent = "Error: " + error.message;
    }
  });

  // -- images -----------------------------------------------------------------------------
  $("image-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const model = $("image-model");
    if (!model) return;
    const meta = $("image-meta");
    meta.textContent = "Generating…";
    try {
      const response = await callApi("/images/generations", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model: model.value, prompt: $("image-prompt").value, size: $("image-size").value, n: 1 }),
      });
      const result = await response.json();
      const images = (result.data || []).map((item) => {
        const image = new Image();
        image.alt = $("image-prompt").value;
        // Asset URLs are absolute; keep only the path so the image loads from this page's host.
        image.src = item.url ? new URL(item.url, location.href).pathname : "data:image/png;base64," + item.b64_json;
        const entry = document.createElement("div");
        entry.className = "asset";
        entry.appendChild(image);
        return entry;
      });
      $("image-result").replaceChildren(...images);
      meta.textContent = images.length + " image" + (images.length === 1 ? "" : "s") + " · saved in your history";
    } catch (error) {
      meta.textContent = "Error: " + error.message;
    }
  });
})();
