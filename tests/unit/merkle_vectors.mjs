// Fixture generator for tests/unit/test_merkle.py: builds trees with the pinned
// @openzeppelin/merkle-tree (1.0.8, from node_modules) and prints roots and proofs as JSON.
// Run from the repository root:  node tests/unit/merkle_vectors.mjs
// and paste the output into VECTORS in test_merkle.py when the cases change.
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';

const A = [
  '0x1111111111111111111111111111111111111111',
  '0x2222222222222222222222222222222222222222',
  '0x3333333333333333333333333333333333333333',
  '0x4444444444444444444444444444444444444444',
  '0x5555555555555555555555555555555555555555',
  '0x8ba1f109551bD432803012645Ac136ddd64DBA72',
  '0xdD2FD4581271e230360230F9337D5c0430Bf44C0',
];
const MAX = (2n ** 256n - 1n).toString();

const cases = [
  { name: 'one', encoding: ['address', 'uint256'], values: [[A[0], '1000']] },
  { name: 'two', encoding: ['address', 'uint256'], values: [[A[0], '1'], [A[1], '2']] },
  {
    name: 'three',
    encoding: ['address', 'uint256'],
    values: [[A[0], '0'], [A[1], MAX], [A[2], '123456789012345678901234567890']],
  },
  {
    name: 'seven',
    encoding: ['address', 'uint256'],
    values: A.map((a, i) => [a, String(10n ** BigInt(i * 5) + BigInt(i))]),
  },
  {
    name: 'mixed',
    encoding: ['uint256', 'address', 'bytes32', 'bool', 'string'],
    values: [
      ['7', A[5], '0x' + 'ab'.repeat(32), true, 'sample'],
      ['8', A[6], '0x' + '00'.repeat(32), false, ''],
      ['9', A[0], '0x' + '0f'.repeat(32), true, 'ViSDM ✓'],
      ['10', A[1], '0x' + 'ff'.repeat(32), false, 'a longer string that needs two words of abi data'],
    ],
  },
];

const out = {};
for (const c of cases) {
  const tree = StandardMerkleTree.of(c.values, c.encoding);
  const indices = c.values.length >= 3 ? [0, 2] : [0];
  const multi = tree.getMultiProof(indices);
  out[c.name] = {
    encoding: c.encoding,
    root: tree.root,
    tree: tree.dump().tree,
    proofs: c.values.map((_, i) => tree.getProof(i)),
    multiproof: { indices, proof: multi.proof, proofFlags: multi.proofFlags },
  };
}
console.log(JSON.stringify(out, null, 1));
