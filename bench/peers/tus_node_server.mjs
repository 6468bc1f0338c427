// @tus/server with @tus/file-store, as its README sets it up: the peer that bench/upload_bench.py compares with.
// Usage: node tus_node_server.mjs <port> <directory>
import http from 'node:http'
import {Server} from '@tus/server'
import {FileStore} from '@tus/file-store'

const [port, directory] = process.argv.slice(2)
const tus = new Server({
  path: '/files',
  datastore: new FileStore({directory}),
  maxSize: 64 * 1024 ** 3,
})
const server = http.createServer((req, res) => tus.handle(req, res))
server.listen(Number(port), '127.0.0.1', () => console.log(`@tus/server listening on 127.0.0.1:${port}`))
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0))
