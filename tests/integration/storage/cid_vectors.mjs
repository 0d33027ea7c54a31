// Derives the CID test vectors in tests/unit/storage/test_cid_vectors.py from a real IPFS
// implementation: ipfs-unixfs-importer (the UnixFS importer of js-ipfs and Helia) writing into
// a blockstore-core MemoryBlockstore, configured as `ipfs add --cid-version=1` with Kubo's
// defaults: CIDv1, raw leaves, fixed 262144-byte chunks, balanced layout with at most 174
// links per node, a single-chunk file reduced to its raw leaf, sha2-256.
//
// Run from the repository root (after `npm ci`):  node tests/integration/storage/cid_vectors.mjs
// It prints one JSON object per case; paste the CIDs into VECTORS when the cases change.
//
// Bytes: case `name` of `size` bytes is SHAKE-256("visdm/storage/vector/" + name) truncated to
// `size` bytes, or `size` zero bytes when the name starts with "zeros" (identical chunks).
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core/memory'

const CHUNK = 262144
const CASES = [
  ['empty', 0],
  ['tiny', 11],
  ['one-chunk', CHUNK],
  ['one-chunk-plus-one', CHUNK + 1],
  ['zeros-three-chunks', 3 * CHUNK + 7],
  ['five-mib', 5 * 1024 * 1024],
  ['174-chunks', 174 * CHUNK],
  ['175-chunks', 174 * CHUNK + 1],
  ['175-full-chunks', 175 * CHUNK],
]

export function vectorBytes (name, size) {
  if (name.startsWith('zeros')) return new Uint8Array(size)
  return new Uint8Array(
    createHash('shake256', { outputLength: size }).update(`visdm/storage/vector/${name}`).digest()
  )
}

// The installed version of a package (its package.json is not exported, so find its folder).
function version (pkg) {
  const entry = fileURLToPath(import.meta.resolve(pkg))
  const root = entry.slice(0, entry.lastIndexOf(`/node_modules/${pkg}/`) + `/node_modules/${pkg}`.length)
  return JSON.parse(readFileSync(`${root}/package.json`, 'utf8')).version
}
const tool = `ipfs-unixfs-importer@${version('ipfs-unixfs-importer')} + blockstore-core@${version('blockstore-core')}, node ${process.version}`

for (const [name, size] of CASES) {
  const blockstore = new MemoryBlockstore()
  const options = {
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize: CHUNK }),
    layout: balanced({ maxChildrenPerNode: 174 }),
    reduceSingleLeafToSelf: true,
    wrapWithDirectory: false,
  }
  let root
  for await (const entry of importer([{ content: vectorBytes(name, size) }], blockstore, options)) {
    root = entry
  }
  let blocks = 0
  for await (const _ of blockstore.getAll()) blocks++
  console.log(JSON.stringify({ name, size, cid: root.cid.toString(), blocks, tool }))
}
