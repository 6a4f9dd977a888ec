// The webcall page: a SimpleX app in miniature. It drives the chat core's
// WebSocket API the way the apps do (protocol §8.4) and runs WebRTC the way
// the SimpleX call page does (§6, §7, Appendix A): four transceivers in mid
// order when it offers, VP8 first, LZString payloads, the ICE batching rule
// (§6.5), and SimpleX frame encryption through insertable streams with the
// call's sharedKey. Written for this project from the protocol document.
"use strict"

const $ = (id) => document.getElementById(id)
const params = new URLSearchParams(location.search)

// --- log -------------------------------------------------------------------

function log(...args) {
  const line = `${new Date().toISOString().slice(11, 23)} ${args.join(" ")}`
  console.log(line)
  const el = $("log")
  el.textContent += line + "\n"
  if (el.textContent.length > 20000) el.textContent = el.textContent.slice(-15000)
  el.scrollTop = el.scrollHeight
}

// --- LZString payloads (protocol §6.1–§6.3) ----------------------------------

const serialize = (x) => LZString.compressToBase64(JSON.stringify(x))

function parse(s, what) {
  const json = typeof s === "string" ? LZString.decompressFromBase64(s) : null
  if (!json) throw new Error(`${what}: not an LZString payload`)
  return JSON.parse(json)
}

// --- chat core client (protocol §8.1) ----------------------------------------

// ChatCore speaks the chat core's WebSocket API: requests {corrId, cmd},
// replies {corrId, resp}, events {resp}. Newer cores wrap resp as
// {"Right": …} or {"Left": …}; both forms are accepted.
class ChatCore {
  constructor(url, onEvent) {
    this.url = url
    this.onEvent = onEvent
    this.nextId = 1
    this.pending = new Map()
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url)
      this.ws = ws
      ws.onopen = () => resolve()
      ws.onerror = () => reject(new Error(`cannot connect to ${this.url}`))
      ws.onclose = () => {
        for (const {reject} of this.pending.values()) reject(new Error("chat core connection closed"))
        this.pending.clear()
        log("chat core connection closed")
        setWho("chat core connection closed — reload the page")
      }
      ws.onmessage = (m) => this.receive(m.data)
    })
  }

  static unwrap(resp) {
    if (resp && typeof resp === "object" && typeof resp.type !== "string") {
      if (resp.Right && typeof resp.Right === "object") return resp.Right
      if (resp.Left !== undefined) return {type: "chatError", chatError: resp.Left}
    }
    return resp
  }

  receive(data) {
    let frame
    try {
      frame = JSON.parse(data)
    } catch (e) {
      log("chat core sent invalid JSON")
      return
    }
    const resp = ChatCore.unwrap(frame.resp)
    if (!resp || typeof resp.type !== "string") {
      log("chat core sent a frame without resp.type")
      return
    }
    if (frame.corrId !== undefined && this.pending.has(frame.corrId)) {
      const {resolve, reject} = this.pending.get(frame.corrId)
      this.pending.delete(frame.corrId)
      if (resp.type === "chatCmdError" || resp.type === "chatError") reject(new Error(chatErrorText(resp.chatError)))
      else resolve(resp)
      return
    }
    try {
      this.onEvent(resp)
    } catch (e) {
      log(`event ${resp.type}: ${e.message}`)
    }
  }

  cmd(text) {
    const corrId = String(this.nextId++)
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return reject(new Error("chat core not connected"))
      this.pending.set(corrId, {resolve, reject})
      this.ws.send(JSON.stringify({corrId, cmd: text}))
    })
  }
}

function chatErrorText(e) {
  if (!e) return "chat error"
  const t = e.errorType || e.storeError || e
  return [e.type, t.type, t.message, t.currentCallState].filter(Boolean).join(": ")
}

// --- state ---------------------------------------------------------------------

let config // from /config.json: encryption, relay, iceServers, contact
let core
let me // the chat user
let bot // the bot's Contact
let call // the current call, or undefined
let lastCall // the previous call, for its final numbers
const corruptKey = params.get("corruptKey") === "1"

// Call is one call with the bot, in either role. Roles (protocol §1): the
// party that invites is the WebRTC answerer; the invited party makes the
// offer when it accepts.
class Call {
  constructor(outgoing, media) {
    this.outgoing = outgoing
    this.media = media
    this.state = outgoing ? "invitationSent" : "ringing"
    this.started = performance.now()
    this.counters = {
      encAudio: {ok: 0, failed: 0}, encVideo: {ok: 0, failed: 0},
      decAudio: {ok: 0, failed: 0}, decVideo: {ok: 0, failed: 0},
    }
    this.transformed = new Set()
    this.remoteQueue = []
    this.remoteSet = false
    this.remoteStream = new MediaStream()
    this.sessionSent = new Promise((resolve) => (this.markSessionSent = resolve))
    this.timers = []
  }

  get ended() {
    return this.state === "ended"
  }
}

function setState(s) {
  if (!call) return
  call.state = s
  log(`call: ${s}`)
  render()
}

// --- WebRTC (protocol §6) ------------------------------------------------------

function peerConnectionConfig(withKey) {
  return {
    iceServers: config.iceServers,
    iceTransportPolicy: config.relay ? "relay" : "all",
    // The SimpleX page pre-gathers a pool of 10. Pooling changes only when
    // candidates are gathered, not what goes on the wire, and every pooled
    // session holds its own TURN allocations: under relay-only Chrome then
    // held more than the ten relay ports of the tests' coturn. No pool here.
    iceCandidatePoolSize: 0,
    // Chrome hands frames to createEncodedStreams only when this is set.
    encodedInsertableStreams: withKey,
  }
}

async function localMedia(media) {
  const video = media === "video" ? {frameRate: 24, width: {ideal: 640}, aspectRatio: 1.33} : false
  return navigator.mediaDevices.getUserMedia({audio: true, video})
}

function newPeerConnection(c) {
  const pc = new RTCPeerConnection(peerConnectionConfig(!!c.key))
  c.pc = pc
  c.ice = batchCandidates(c)
  pc.ontrack = (e) => onTrack(c, e)
  pc.onconnectionstatechange = () => onConnectionState(c)
  // The SimpleX page re-checks the state 30 s after creating the peer
  // connection (protocol §6.6).
  c.timers.push(setTimeout(() => {
    if (!c.ended && c.pc.connectionState !== "connected") {
      log(`not connected after 30 s (${c.pc.connectionState})`)
      hangup("connect timeout")
    }
  }, 30000))
  return pc
}

// batchCandidates is the page's ICE batching (protocol §6.5): candidates
// are collected from the start; the first batch rides in the offer/answer
// when gathering completes or after 750 ms, whichever comes first; later
// ones go as extras every 1500 ms until 12 s after that, with a final flush
// (at once if gathering completes). Extras go only after the offer/answer
// was delivered: the peer drops candidates for a call it does not have yet.
function batchCandidates(c) {
  const pc = c.pc
  let pending = []
  let taken = false
  let interval, stop
  let resolveInitial
  const initial = new Promise((r) => (resolveInitial = r))
  const delay = setTimeout(() => {
    if (taken) return
    take()
    interval = setInterval(sendExtras, 1500)
    stop = setTimeout(() => {
      clearInterval(interval)
      sendExtras()
    }, 12000)
    c.timers.push(interval, stop)
  }, 750)
  c.timers.push(delay)
  pc.onicecandidate = (e) => e.candidate && pending.push(e.candidate.toJSON())
  pc.onicegatheringstatechange = () => {
    if (pc.iceGatheringState !== "complete") return
    if (taken) {
      clearInterval(interval)
      clearTimeout(stop)
      sendExtras()
    } else {
      take()
    }
  }
  function take() {
    clearTimeout(delay)
    taken = true
    const batch = pending
    pending = []
    log(`${batch.length} ICE candidates go with the ${c.outgoing ? "answer" : "offer"}`)
    resolveInitial(serialize(batch))
  }
  async function sendExtras() {
    if (pending.length === 0) return
    const batch = pending
    pending = []
    await c.sessionSent
    if (c.ended) return
    try {
      await core.cmd(`/_call extra @${bot.contactId} ${JSON.stringify({rtcIceCandidates: serialize(batch)})}`)
      log(`sent ${batch.length} more ICE candidates`)
    } catch (e) {
      log(`extra: ${e.message}`)
    }
  }
  return {initial}
}

function addRemoteCandidates(c, payload) {
  let cands
  try {
    cands = parse(payload, "rtcIceCandidates")
  } catch (e) {
    log(e.message)
    return
  }
  // An object instead of a list is an ICE-restart message (protocol §6.8),
  // which this page does not implement: ignored, as the spec asks.
  if (!Array.isArray(cands)) return
  if (!c.remoteSet) {
    c.remoteQueue.push(...cands)
    return
  }
  log(`${cands.length} ICE candidates from the bot`)
  for (const cand of cands) {
    c.pc.addIceCandidate(cand).catch((e) => log(`candidate not usable: ${e.message}`))
  }
}

// transform sets up frame encryption on one sender or receiver. With
// encodedInsertableStreams every one of them must be piped, or its frames
// wait forever; each can be piped once.
function transform(c, endpoint, kind, op) {
  if (!c.key || c.transformed.has(endpoint)) return
  c.transformed.add(endpoint)
  const {readable, writable} = endpoint.createEncodedStreams()
  const counter = c.counters[(op === "encrypt" ? "enc" : "dec") + (kind === "video" ? "Video" : "Audio")]
  const fn = op === "encrypt" ? FrameCrypto.encryptTransform(c.key, counter) : FrameCrypto.decryptTransform(c.key, counter)
  readable
    .pipeThrough(new TransformStream({transform: fn}))
    .pipeTo(writable)
    .catch((e) => c.ended || log(`${op} ${kind}: ${e.message}`))
}

function transformAll(c) {
  for (const t of c.pc.getTransceivers()) {
    const kind = t.receiver.track.kind
    transform(c, t.sender, kind, "encrypt")
    transform(c, t.receiver, kind, "decrypt")
  }
}

// preferVP8 moves VP8 to the front on every video transceiver: the frame
// encryption's clear prefix assumes VP8 (protocol §6.4, §7.3).
function preferVP8(pc) {
  const caps = RTCRtpReceiver.getCapabilities("video")
  if (!caps) return
  const vp8 = caps.codecs.filter((k) => k.mimeType.toLowerCase() === "video/vp8")
  const rest = caps.codecs.filter((k) => k.mimeType.toLowerCase() !== "video/vp8")
  for (const t of pc.getTransceivers()) {
    if (t.receiver.track.kind === "video") t.setCodecPreferences([...vp8, ...rest])
  }
}

function onTrack(c, e) {
  // Current peers name the source by mid (protocol §6.4): "0" microphone,
  // "1" camera; screen sharing ("2", "3") is not shown here. Older peers'
  // mids are not numbers: take their first audio and video.
  const mid = e.transceiver.mid
  const isMain = mid === "0" || mid === "1" || !/^[0-3]$/.test(mid || "")
  if (isMain && !c.remoteStream.getTracks().some((t) => t.kind === e.track.kind)) {
    c.remoteStream.addTrack(e.track)
  }
  $("remote-video").srcObject = c.remoteStream
}

async function onConnectionState(c) {
  const s = c.pc.connectionState
  if (c.ended) return
  log(`connection: ${s}`)
  // The core accepts these four words only (protocol §8.4).
  if (["connecting", "connected", "disconnected", "failed"].includes(s)) {
    core.cmd(`/_call status @${bot.contactId} ${s}`).catch((e) => log(`status: ${e.message}`))
  }
  if (s === "connected" && !c.connectedAt) {
    c.connectedAt = performance.now()
    c.setupMs = Math.round(c.connectedAt - c.started)
    // Chrome may say connected a moment before its stats name the pair.
    for (let i = 0; i < 20 && !c.path && !c.ended; i++) {
      c.path = await selectedPath(c.pc)
      if (!c.path) await new Promise((r) => setTimeout(r, 100))
    }
    if (c.ended) return
    setState("connected")
    log(`connected in ${c.setupMs} ms via ${c.path ? c.path.text : "?"}`)
  } else if (s === "disconnected" || s === "failed") {
    // As the SimpleX page: a call that lost its connection is over.
    hangup(`connection ${s}`)
  }
}

async function selectedPath(pc) {
  const stats = await pc.getStats()
  let pair
  for (const r of stats.values()) {
    if (r.type === "transport" && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId)
  }
  if (!pair) {
    for (const r of stats.values()) if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r
  }
  if (!pair) return undefined
  const l = stats.get(pair.localCandidateId) || {}
  const r = stats.get(pair.remoteCandidateId) || {}
  const relay = l.candidateType === "relay" || r.candidateType === "relay"
  return {
    relay,
    local: l.candidateType,
    remote: r.candidateType,
    text: `${relay ? "relay" : "peer-to-peer"} (${l.candidateType}/${r.candidateType} ${l.protocol || ""})`,
  }
}

// useKey decides whether this call's frames are encrypted: only with a key
// from the chat core and encryption switched on; without a key the call is
// allowed only when encryption is switched off here (protocol §5.1).
async function useKey(c, sharedKey) {
  if (!config.encryption) {
    c.key = undefined
    return
  }
  if (!sharedKey) throw new Error("the peer does not encrypt frames and encryption is required")
  c.key = await FrameCrypto.importKey(sharedKey, {corrupt: corruptKey})
}

// --- outgoing call: we invite, the bot offers, we answer (protocol §8.4) -------

async function placeCall(media) {
  if (call && !call.ended) throw new Error("a call is in progress")
  call = new Call(true, media)
  render()
  try {
    const callType = {media, capabilities: {encryption: config.encryption}}
    await core.cmd(`/_call invite @${bot.contactId} ${JSON.stringify(callType)}`)
    log(`invited the bot to a ${media} call`)
  } catch (e) {
    endLocally(`invite: ${e.message}`)
    throw e
  }
}

async function onOffer(ev) {
  const c = call
  if (!c || !c.outgoing || c.state !== "invitationSent") return
  setState("answering")
  try {
    await useKey(c, ev.askConfirmation ? undefined : ev.sharedKey)
    c.local = await localMedia(c.media)
    if (c.ended) return
    $("local-video").srcObject = c.local
    const pc = newPeerConnection(c)
    const offer = parse(ev.offer.rtcSession, "rtcSession")
    await pc.setRemoteDescription(offer)
    c.remoteSet = true
    // Answer every m-line sendrecv (protocol §6.4), our microphone on the
    // first audio, our camera on the first video.
    const audio = c.local.getAudioTracks()[0]
    const video = c.local.getVideoTracks()[0]
    let micDone = false
    let camDone = false
    for (const t of pc.getTransceivers()) {
      t.direction = "sendrecv"
      const kind = t.receiver.track.kind
      if (kind === "audio" && !micDone) {
        micDone = true
        if (audio) await t.sender.replaceTrack(audio)
        t.sender.setStreams(c.local)
      } else if (kind === "video" && !camDone) {
        camDone = true
        if (video) await t.sender.replaceTrack(video)
        t.sender.setStreams(c.local)
      }
    }
    transformAll(c)
    preferVP8(pc)
    const answer = await pc.createAnswer()
    await pc.setLocalDescription(answer)
    addRemoteCandidates(c, ev.offer.rtcIceCandidates)
    for (const cand of c.remoteQueue.splice(0)) pc.addIceCandidate(cand).catch(() => {})
    const rtcIceCandidates = await c.ice.initial
    if (c.ended) return
    await core.cmd(`/_call answer @${bot.contactId} ${JSON.stringify({rtcSession: serialize(pc.localDescription), rtcIceCandidates})}`)
    c.markSessionSent()
    if (c.state === "answering") setState("negotiated")
  } catch (e) {
    log(`answer failed: ${e.message}`)
    hangup(e.message)
  }
}

// --- incoming call: the bot invites, we offer, the bot answers ---------------------

function onInvitation(inv) {
  if (!bot || inv.contact.contactId !== bot.contactId) return
  if (call && !call.ended) {
    // A new invitation replaces the current call, as in the core (§4.2).
    endLocally("replaced by a new invitation")
  }
  call = new Call(false, inv.callType.media)
  call.invitation = inv
  $("incoming-text").textContent = `${bot.localDisplayName} is calling (${inv.callType.media})`
  render()
  log(`incoming ${inv.callType.media} call`)
}

async function acceptCall() {
  const c = call
  if (!c || c.outgoing || c.state !== "ringing") throw new Error("no incoming call")
  c.started = performance.now()
  setState("accepting")
  try {
    await useKey(c, c.invitation.sharedKey)
    c.local = await localMedia(c.media)
    if (c.ended) return
    $("local-video").srcObject = c.local
    const pc = newPeerConnection(c)
    // Exactly four transceivers in this order (protocol §6.4): microphone,
    // camera (even in an audio call), screen audio, screen video.
    const init = {direction: "sendrecv", streams: [c.local]}
    pc.addTransceiver(c.local.getAudioTracks()[0] || "audio", init)
    pc.addTransceiver(c.local.getVideoTracks()[0] || "video", init)
    pc.addTransceiver("audio", init)
    pc.addTransceiver("video", init)
    transformAll(c)
    preferVP8(pc)
    const offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    const rtcIceCandidates = await c.ice.initial
    if (c.ended) return
    const callOffer = {
      callType: {media: c.media, capabilities: {encryption: !!c.key}},
      rtcSession: {rtcSession: serialize(pc.localDescription), rtcIceCandidates},
    }
    await core.cmd(`/_call offer @${bot.contactId} ${JSON.stringify(callOffer)}`)
    c.markSessionSent()
    if (c.state === "accepting") setState("offerSent")
  } catch (e) {
    log(`accept failed: ${e.message}`)
    hangup(e.message)
  }
}

async function onAnswer(ev) {
  const c = call
  if (!c || c.outgoing || !c.pc || c.remoteSet) return
  try {
    await c.pc.setRemoteDescription(parse(ev.answer.rtcSession, "rtcSession"))
    c.remoteSet = true
    for (const cand of c.remoteQueue.splice(0)) c.pc.addIceCandidate(cand).catch(() => {})
    addRemoteCandidates(c, ev.answer.rtcIceCandidates)
    if (c.state === "offerSent") setState("negotiated")
  } catch (e) {
    log(`answer: ${e.message}`)
    hangup(e.message)
  }
}

async function rejectCall() {
  const c = call
  if (!c || c.outgoing || c.state !== "ringing") throw new Error("no incoming call")
  await core.cmd(`/_call reject @${bot.contactId}`)
  endLocally("rejected")
}

// --- ending --------------------------------------------------------------------

async function hangup(reason = "hung up") {
  const c = call
  if (!c || c.ended) return
  endLocally(reason)
  try {
    await core.cmd(`/_call end @${bot.contactId}`)
  } catch (e) {
    log(`end: ${e.message}`)
  }
}

function endLocally(reason) {
  const c = call
  if (!c || c.ended) return
  c.reason = reason
  c.state = "ended"
  for (const t of c.timers) clearTimeout(t)
  if (c.pc) c.pc.close()
  if (c.local) for (const t of c.local.getTracks()) t.stop()
  $("local-video").srcObject = null
  $("remote-video").srcObject = null
  lastCall = c
  log(`call ended: ${reason}`)
  render()
}

// --- events from the chat core (protocol §8.3) ---------------------------------

function onEvent(ev) {
  // Events carry their user; this page is one user.
  const user = ev.user || (ev.callInvitation && ev.callInvitation.user)
  if (user && me && user.userId !== me.userId) return
  const contactId = (ev.contact && ev.contact.contactId) || undefined
  switch (ev.type) {
    case "callInvitation":
      onInvitation(ev.callInvitation)
      break
    case "callOffer":
      if (contactId === bot.contactId) onOffer(ev)
      break
    case "callAnswer":
      if (contactId === bot.contactId) onAnswer(ev)
      break
    case "callExtraInfo":
      if (contactId === bot.contactId && call && call.pc && !call.ended) addRemoteCandidates(call, ev.extraInfo.rtcIceCandidates)
      break
    case "callEnded":
      if (contactId === bot.contactId) endLocally("ended by the bot")
      break
    case "newChatItems":
    case "chatItemUpdated":
      for (const it of ev.chatItems || [ev.chatItem]) {
        const text = it && it.chatItem && it.chatItem.meta && it.chatItem.meta.itemText
        if (text) log(`chat: ${text}`)
      }
      break
    case "messageError":
      log(`core: ${ev.errorMessage}`)
      break
  }
}

// --- numbers -------------------------------------------------------------------

// snapshot returns what the page knows about the current (or last) call:
// state, encryption, path, setup time, the frame counters of its transforms
// and the decoder's numbers from getStats.
async function snapshot() {
  const c = call || lastCall
  if (!c) return {state: "idle"}
  const s = {
    state: c.state,
    outgoing: c.outgoing,
    media: c.media,
    encrypted: !!c.key,
    encryptionOn: config.encryption,
    setupMs: c.setupMs,
    path: c.path,
    reason: c.reason,
    localSdp: c.pc && c.pc.localDescription ? c.pc.localDescription.sdp : "",
    counters: JSON.parse(JSON.stringify(c.counters)),
    audio: {samplesReceived: 0, concealedSamples: 0, packetsReceived: 0, bytesReceived: 0},
    video: {framesDecoded: 0, framesReceived: 0, keyFramesDecoded: 0, bytesReceived: 0, frameWidth: 0},
    bytesSent: 0,
  }
  if (c.pc && !c.ended) {
    const stats = await c.pc.getStats()
    for (const r of stats.values()) {
      if (r.type === "inbound-rtp" && r.kind === "audio" && (r.mid === "0" || r.mid === undefined)) {
        s.audio.samplesReceived += r.totalSamplesReceived || 0
        s.audio.concealedSamples += r.concealedSamples || 0
        s.audio.packetsReceived += r.packetsReceived || 0
        s.audio.bytesReceived += r.bytesReceived || 0
      } else if (r.type === "inbound-rtp" && r.kind === "video") {
        s.video.framesDecoded += r.framesDecoded || 0
        s.video.framesReceived += r.framesReceived || 0
        s.video.keyFramesDecoded += r.keyFramesDecoded || 0
        s.video.bytesReceived += r.bytesReceived || 0
        s.video.frameWidth = Math.max(s.video.frameWidth, r.frameWidth || 0)
      } else if (r.type === "outbound-rtp") {
        s.bytesSent += r.bytesSent || 0
      }
    }
    c.lastStats = {audio: s.audio, video: s.video, bytesSent: s.bytesSent}
  } else if (c.lastStats) {
    Object.assign(s, c.lastStats)
  }
  return s
}

let lastRates
let botStats

async function refresh() {
  const s = await snapshot()
  const now = performance.now()
  if (s.state === "connected") {
    const bytesIn = s.audio.bytesReceived + s.video.bytesReceived
    if (lastRates && lastRates.call === call) {
      const dt = (now - lastRates.at) / 1000
      s.kbpsIn = Math.round(((bytesIn - lastRates.in) * 8) / dt / 1000)
      s.kbpsOut = Math.round(((s.bytesSent - lastRates.out) * 8) / dt / 1000)
    }
    lastRates = {call, at: now, in: bytesIn, out: s.bytesSent}
  }
  try {
    const r = await fetch("bot/stats")
    botStats = r.ok ? await r.json() : undefined
  } catch (e) {
    botStats = undefined
  }
  renderNumbers(s)
}

// --- rendering -----------------------------------------------------------------

function setWho(text) {
  $("who").textContent = text
}

function render() {
  const c = call
  const active = c && !c.ended
  const ready = !!bot
  $("call-video").disabled = !ready || active
  $("call-audio").disabled = !ready || active
  $("ask-video").disabled = !ready || active
  $("ask-audio").disabled = !ready || active
  $("incoming").hidden = !(c && !c.outgoing && c.state === "ringing")
  $("hangup").disabled = !active
  $("state").textContent = c ? `${c.outgoing ? "outgoing" : "incoming"} ${c.media} call: ${c.state}${c.ended && c.reason ? ` (${c.reason})` : ""}` : "idle"
}

function renderNumbers(s) {
  const e2e = $("e2e")
  if (s.state === "idle") return
  if (s.encrypted) {
    e2e.textContent = `end-to-end encrypted (AES-256-GCM per frame, key from the chat's X25519 exchange)${corruptKey ? " — TEST: corrupted key" : ""}`
    e2e.className = corruptKey ? "bad" : "good"
  } else if (["connected", "negotiated", "offerSent", "answering", "accepting"].includes(s.state) || s.setupMs) {
    e2e.textContent = "NOT end-to-end encrypted (encryption is off; DTLS-SRTP only)"
    e2e.className = "bad"
  } else {
    e2e.textContent = config.encryption ? "will be end-to-end encrypted" : "encryption is off"
    e2e.className = ""
  }
  $("path").textContent = s.path ? s.path.text : "–"
  $("setup").textContent = s.setupMs !== undefined ? `${s.setupMs} ms` : "–"
  const k = s.counters
  $("page-audio-dec").textContent = `${k.decAudio.ok} / ${k.decAudio.failed}`
  $("page-video-dec").textContent = `${k.decVideo.ok} / ${k.decVideo.failed}`
  $("page-enc").textContent = `${k.encAudio.ok} / ${k.encVideo.ok}`
  $("page-vp8").textContent = `${s.video.framesDecoded}`
  $("page-samples").textContent = `${s.audio.samplesReceived}`
  if (s.kbpsIn !== undefined) $("page-bitrate").textContent = `${s.kbpsIn} / ${s.kbpsOut} kbit/s`
  const b = botStats
  if (b && b.streams) {
    const mic = b.streams[0]
    const cam = b.streams[1]
    $("bot-audio-dec").textContent = `${mic.decrypted} / ${mic.decryptFailed}`
    $("bot-video-dec").textContent = `${cam.decrypted} / ${cam.decryptFailed}`
    $("bot-sent").textContent = `${mic.framesSent} / ${cam.framesSent}`
  }
}

// --- start ---------------------------------------------------------------------

async function askBot(media) {
  const r = await fetch("bot/call", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({media})})
  if (!r.ok) throw new Error(`bot: ${await r.text()}`)
  log(`asked the bot to ${media} call`)
}

function button(id, fn) {
  $(id).addEventListener("click", () => fn().catch((e) => log(`${id}: ${e.message}`)))
}

async function start() {
  config = await (await fetch("config.json")).json()
  if (!("createEncodedStreams" in RTCRtpSender.prototype) && config.encryption) {
    setWho("this browser has no insertable streams: frame encryption is impossible")
  }
  const wsURL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/chat`
  core = new ChatCore(wsURL, onEvent)
  await core.open()
  const user = await core.cmd("/user")
  me = user.user
  const contacts = await core.cmd(`/_contacts ${me.userId}`)
  bot = contacts.contacts.find((ct) => ct.localDisplayName === config.contact)
  if (!bot) throw new Error(`no contact named ${config.contact}`)
  setWho(`you are ${me.localDisplayName}; contact: ${bot.localDisplayName} (Go SDK)${config.relay ? " — relay only" : ""}${config.encryption ? "" : " — encryption off"}`)
  button("call-video", () => placeCall("video"))
  button("call-audio", () => placeCall("audio"))
  button("ask-video", () => askBot("video"))
  button("ask-audio", () => askBot("audio"))
  button("accept", acceptCall)
  button("reject", rejectCall)
  button("hangup", () => hangup())
  render()
  setInterval(() => refresh().catch((e) => log(`stats: ${e.message}`)), 1000)
  log("ready")
}

// window.webcall is what the tests read (and a console user may call).
const ready = start()
window.webcall = {ready, snapshot, placeCall, acceptCall, rejectCall, hangup, askBot, FrameCrypto}
ready.catch((e) => {
  log(`start failed: ${e.message}`)
  setWho(`start failed: ${e.message}`)
})
