// SimpleX media frame encryption (protocol §7) with WebCrypto, as the
// SimpleX call page does it through insertable streams:
//
//   encrypted frame = clear prefix (n bytes) || AES-256-GCM(rest) || 16-byte tag || 12-byte IV
//
// n = 10 for a VP8 key frame (frame tag, start code, dimensions: RFC 6386
// §9.1), 3 for a VP8 delta frame (frame tag), 1 for an audio frame (the Opus
// TOC byte, RFC 6716 §3.1) and for a frame of type "empty". No additional
// authenticated data. The key is the 32 bytes of the call's sharedKey,
// base64url with padding (protocol §5.2). A frame with nothing after its
// prefix is sent as prefix || IV, without a tag, as the SimpleX page does
// (§7.4).
//
// Written for this project from the protocol document; it is loaded by the
// page and, in the tests, run in Chromium against the vectors of
// testdata/frame-vectors*.json byte for byte.
"use strict"

const FrameCrypto = (() => {
  const IV_LENGTH = 12
  const TAG_LENGTH = 16
  const KEY_LENGTH = 32

  // Clear prefix length by RTCEncodedVideoFrame.type; audio frames have no
  // type and take 1 (protocol §7.2).
  const PREFIX = {key: 10, delta: 3, empty: 1}

  function prefixLength(frameType) {
    return PREFIX[frameType] || 1
  }

  // decodeBase64url decodes RFC 4648 §5 base64url. The chat core sends the
  // padded form (44 characters for a key); the unpadded form is accepted
  // too. Anything else is an error, never a silently different key.
  function decodeBase64url(s) {
    if (typeof s !== "string" || !/^[A-Za-z0-9_-]*={0,2}$/.test(s)) throw new Error("not base64url")
    let b = s.replace(/=+$/, "").replace(/-/g, "+").replace(/_/g, "/")
    if (b.length % 4 === 1) throw new Error("not base64url: bad length")
    while (b.length % 4) b += "="
    const bin = atob(b)
    const out = new Uint8Array(bin.length)
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
    return out
  }

  // importKey turns the call's sharedKey into an AES-256-GCM key that cannot
  // be exported again.
  async function importKey(sharedKey, {corrupt = false} = {}) {
    const raw = decodeBase64url(sharedKey)
    if (raw.length !== KEY_LENGTH) throw new Error(`key must be ${KEY_LENGTH} bytes, got ${raw.length}`)
    // Test hook (?corruptKey=1): one flipped bit gives a key that the peer
    // does not have, to show what a wrong key does.
    if (corrupt) raw[0] ^= 1
    const key = await crypto.subtle.importKey("raw", raw, {name: "AES-GCM", length: 256}, false, ["encrypt", "decrypt"])
    raw.fill(0)
    return key
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
    let off = 0
    for (const p of parts) {
      out.set(p, off)
      off += p.length
    }
    return out
  }

  // encrypt returns the encrypted form of one frame. iv is for tests only
  // (fixed-IV vectors); calls always use 12 fresh random bytes.
  async function encrypt(key, data, n, iv) {
    iv = iv || crypto.getRandomValues(new Uint8Array(IV_LENGTH))
    if (iv.length !== IV_LENGTH) throw new Error("IV must be 12 bytes")
    const clear = data.subarray(0, n)
    const rest = data.subarray(clear.length)
    const sealed = rest.length ? new Uint8Array(await crypto.subtle.encrypt({name: "AES-GCM", iv}, key, rest)) : new Uint8Array(0)
    return concat(clear, sealed, iv)
  }

  // decrypt returns the plain frame or throws. A frame shorter than its
  // prefix plus the IV is refused (the SimpleX page would return its first n
  // bytes unchecked; the Go SDK refuses it too). prefix || IV is the page's
  // form of a frame with nothing encrypted; prefix || tag || IV (iOS) is
  // checked like any other.
  async function decrypt(key, data, n) {
    if (data.length < n + IV_LENGTH) throw new Error("frame too short")
    const clear = data.subarray(0, n)
    const sealed = data.subarray(n, data.length - IV_LENGTH)
    const iv = data.subarray(data.length - IV_LENGTH)
    if (sealed.length === 0) return clear.slice()
    if (sealed.length < TAG_LENGTH) throw new Error("frame too short for its tag")
    const plain = new Uint8Array(await crypto.subtle.decrypt({name: "AES-GCM", iv}, key, sealed))
    return concat(clear, plain)
  }

  // frameTransform is the transform for RTCRtpSender/RTCRtpReceiver
  // .createEncodedStreams: op is encrypt or decrypt. A frame that fails to
  // encrypt is dropped, never sent in the clear. A frame that fails to
  // decrypt is dropped and counted: the SimpleX page throws instead, which
  // errors the stream and stops that receiver for the rest of the call;
  // dropping keeps the counters going, and in both cases the decoder never
  // sees the frame.
  function frameTransform(op, key, counter) {
    return async (frame, controller) => {
      try {
        const out = await op(key, new Uint8Array(frame.data), prefixLength(frame.type))
        frame.data = out.buffer
        counter.ok++
        controller.enqueue(frame)
      } catch (e) {
        counter.failed++
      }
    }
  }

  const encryptTransform = (key, counter) => frameTransform(encrypt, key, counter)
  const decryptTransform = (key, counter) => frameTransform(decrypt, key, counter)

  return {IV_LENGTH, TAG_LENGTH, prefixLength, decodeBase64url, importKey, encrypt, decrypt, encryptTransform, decryptTransform}
})()
