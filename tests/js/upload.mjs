#!/usr/bin/env node
// Upload one file from disk to a tus endpoint with tus-js-client, as the uploader page does, and print the
// result as one JSON object on stdout:
//   {"url": <final upload URL>, "partialUrls": [...], "resumedFrom": <offset HEAD gave on resuming, or null>,
//    "resumeHeadMs": <how long that HEAD took>, "requests": [...]}
//
//   node tests/js/upload.mjs <endpoint> <file> [--parallel N] [--chunk-size BYTES]
//        [--filename NAME] [--filetype TYPE] [--abort-at progress|chunk] [--throttle BYTES_PER_SECOND]
//
// --parallel N      parallelUploads: N partial uploads, then a final one (concatenation extension)
// --chunk-size B    chunkSize of each PATCH (single stream)
// --abort-at WHEN   abort the upload mid-PATCH (`progress`: once half of the first chunk has been sent) or
//                   after the first chunk is acknowledged (`chunk`), then start a new Upload with the same
//                   uploadUrl and finish it
// --throttle R      send request bodies at R bytes per second, like a slow far-away link
//
// Retries are off: any error response from the server makes the script exit 1 with the error on stderr, so
// a test sees the server's failure instead of a retry hiding it.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { Readable, Transform } from 'node:stream'

const require = createRequire(import.meta.url)
let tus
try {
  tus = require('tus-js-client')
} catch (error) {
  process.stderr.write(`tus-js-client is not installed (${error.code || error.message}); run \`make test\` ` +
    '(or `npm install` in the project root)\n')
  process.exit(3)
}

function parseArgs (argv) {
  const [endpoint, file, ...rest] = argv
  if (!endpoint || !file) {
    process.stderr.write('usage: upload.mjs <endpoint> <file> [--parallel N] [--chunk-size BYTES] ' +
      '[--filename NAME] [--filetype TYPE] [--abort-at progress|chunk]\n')
    process.exit(2)
  }
  const options = { endpoint, file, parallel: 1, chunkSize: Infinity, filename: path.basename(file), filetype: '' }
  for (let i = 0; i < rest.length; i += 2) {
    const [flag, value] = [rest[i], rest[i + 1]]
    if (value === undefined) throw new Error(`${flag} needs a value`)
    if (flag === '--parallel') options.parallel = Number(value)
    else if (flag === '--chunk-size') options.chunkSize = Number(value)
    else if (flag === '--filename') options.filename = value
    else if (flag === '--filetype') options.filetype = value
    else if (flag === '--abort-at') options.abortAt = value
    else if (flag === '--throttle') options.throttle = Number(value)
    else throw new Error(`unknown option ${flag}`)
  }
  if (options.abortAt && !['progress', 'chunk'].includes(options.abortAt)) {
    throw new Error('--abort-at takes progress or chunk')
  }
  return options
}

const options = parseArgs(process.argv.slice(2))
const requests = [] // every exchange, for the test's diagnostics
const partialUrls = []
let resumedFrom = null
let resumeStarted = null
let resumeHeadMs = null
// --abort-at progress: stop once half a chunk has gone out, so the server is cut off in the middle of a body.
const abortAfterBytes = Number.isFinite(options.chunkSize) ? Math.max(1, Math.floor(options.chunkSize / 2)) : 1

// A body stream that lets bytes through at a fixed rate.
class Throttle extends Transform {
  constructor (bytesPerSecond) {
    super()
    this.rate = bytesPerSecond
    this.started = Date.now()
    this.passed = 0
    this.timer = null
  }

  _transform (chunk, _encoding, done) {
    const slice = Math.max(1, Math.floor(this.rate / 50))
    const next = (offset) => {
      if (this.destroyed || offset >= chunk.length) return done()
      const piece = chunk.subarray(offset, offset + slice)
      const due = this.started + ((this.passed + piece.length) / this.rate) * 1000
      this.timer = setTimeout(() => {
        this.passed += piece.length
        this.push(piece)
        next(offset + piece.length)
      }, Math.max(0, due - Date.now()))
    }
    next(0)
  }

  _destroy (error, callback) {
    clearTimeout(this.timer)
    callback(error)
  }
}

// tus-js-client's own Node HTTP stack, with request bodies sent through a Throttle.
class ThrottledHttpStack {
  constructor (bytesPerSecond) {
    this.inner = new tus.DefaultHttpStack()
    this.rate = bytesPerSecond
  }

  getName () { return 'ThrottledNodeHttpStack' }

  createRequest (method, url) {
    const request = this.inner.createRequest(method, url)
    const rate = this.rate
    let throttle = null
    return {
      getMethod: () => request.getMethod(),
      getURL: () => request.getURL(),
      setHeader: (name, value) => request.setHeader(name, value),
      getHeader: (name) => request.getHeader(name),
      setProgressHandler: (handler) => request.setProgressHandler(handler),
      getUnderlyingObject: () => request.getUnderlyingObject(),
      send (body = null) {
        if (body instanceof Readable) {
          throttle = new Throttle(rate)
          throttle.size = body.size
          body.pipe(throttle)
          return request.send(throttle)
        }
        return request.send(body)
      },
      abort () {
        if (throttle) throttle.destroy()
        return request.abort()
      }
    }
  }
}

function makeUpload (extra) {
  const metadata = { filename: options.filename }
  if (options.filetype) metadata.filetype = options.filetype
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(fs.createReadStream(options.file), {
      endpoint: options.endpoint,
      metadata,
      chunkSize: options.chunkSize,
      parallelUploads: options.parallel,
      retryDelays: null,
      ...(options.throttle ? { httpStack: new ThrottledHttpStack(options.throttle) } : {}),
      storeFingerprintForResuming: false,
      removeFingerprintOnSuccess: false,
      onAfterResponse (req, res) {
        const entry = { method: req.getMethod(), url: req.getURL(), status: res.getStatus() }
        for (const name of ['Upload-Offset', 'Upload-Length', 'Upload-Concat', 'Location']) {
          const value = res.getHeader(name)
          if (value) entry[name] = value
        }
        const concat = req.getHeader('Upload-Concat')
        if (concat) entry.requestConcat = concat
        requests.push(entry)
        if (req.getMethod() === 'POST' && concat === 'partial' && entry.Location) {
          partialUrls.push(new URL(entry.Location, req.getURL()).href)
        }
        if (req.getMethod() === 'HEAD' && resumedFrom === null && extra.resuming) {
          resumedFrom = Number(res.getHeader('Upload-Offset'))
          resumeHeadMs = Date.now() - resumeStarted
        }
      },
      onError: reject,
      onSuccess: () => resolve(upload),
      ...extra.options(() => upload, resolve)
    })
    upload.start()
  })
}

async function main () {
  let upload
  if (options.abortAt) {
    // First attempt: stop it early, remember its URL, like a page reload or a dropped link.
    const aborted = await makeUpload({
      options (current, resolve) {
        let done = false
        const stop = () => {
          if (done) return
          done = true
          const first = current()
          // abort(false): stop sending, do not terminate the upload on the server.
          first.abort(false).then(() => resolve(first))
        }
        return options.abortAt === 'progress'
          ? { onProgress: (sent) => { if (sent >= abortAfterBytes) stop() } }
          : { onChunkComplete: stop }
      }
    })
    if (!aborted.url) throw new Error('the first attempt was aborted before the upload was created')
    const firstUrl = aborted.url
    resumeStarted = Date.now()
    upload = await makeUpload({ resuming: true, options: () => ({ uploadUrl: firstUrl }) })
    if (upload.url !== firstUrl) throw new Error(`resumed upload moved from ${firstUrl} to ${upload.url}`)
  } else {
    upload = await makeUpload({ options: () => ({}) })
  }
  process.stdout.write(JSON.stringify({ url: upload.url, partialUrls, resumedFrom, resumeHeadMs, requests }) + '\n')
}

main().catch((error) => {
  process.stderr.write(`upload failed: ${error && error.stack ? error.stack : error}\n`)
  process.stderr.write(`exchanges: ${JSON.stringify(requests)}\n`)
  process.exit(1)
})
