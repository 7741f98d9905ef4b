"""Token datasets written by `ipt data prepare` (docs/data.md: meta.json + shard-NNNNN.bin) and the
packed rows the trainer reads: documents back to back, each token labelled with the next token of
its document (-100 after a document's last token), rows of max_seq_len tokens cut from that stream."""
import json
import os
import struct

import numpy as np
import torch

MAGIC = b"IPTSHRD1"
HEADER = struct.Struct("<8sIIQQQ")  # magic, version, token_bytes, tokens, documents, checksum


def read_dataset(path):
    """-> (vocab_size, list of documents as int64 numpy arrays)."""
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    documents = []
    for shard in meta["shards"]:
        name = os.path.join(path, shard["file"])
        with open(name, "rb") as f:
            data = f.read()
        if len(data) < HEADER.size:
            raise ValueError(f"{name}: truncated header")
        magic, version, token_bytes, tokens, docs, _ = HEADER.unpack_from(data)
        if magic != MAGIC or version != 1 or token_bytes not in (2, 4):
            raise ValueError(f"{name}: not a version 1 token shard")
        size = HEADER.size + tokens * token_bytes + (docs + 1) * 8
        if len(data) != size or tokens != shard["tokens"] or docs != shard["documents"]:
            raise ValueError(f"{name}: {len(data)} bytes, expected {size} for {tokens} tokens, {docs} documents")
        ids = np.frombuffer(data, np.uint16 if token_bytes == 2 else np.uint32, tokens, HEADER.size)
        offsets = np.frombuffer(data, np.uint64, docs + 1, HEADER.size + tokens * token_bytes).astype(np.int64)
        if offsets[0] != 0 or offsets[-1] != tokens or np.any(np.diff(offsets) < 0):
            raise ValueError(f"{name}: bad document offsets")
        documents += [ids[a:b].astype(np.int64) for a, b in zip(offsets[:-1], offsets[1:]) if b > a]
    return int(meta["vocab_size"]), documents


class PackedRows:
    """Row r of the stream, deterministically: epochs of (seeded) document order, concatenated and
    cut into rows; a row holds pieces of several documents, told apart by its position_ids."""

    def __init__(self, documents, seq_len, seed=0, shuffle=True):
        self.documents, self.seq_len, self.seed, self.shuffle = documents, seq_len, seed, shuffle
        self.epoch_tokens = sum(len(d) for d in documents)
        if self.epoch_tokens < seq_len:
            raise ValueError(f"the dataset holds {self.epoch_tokens} tokens, fewer than one row of {seq_len}")
        self._epochs = {}

    def _epoch(self, e):
        if e not in self._epochs:
            order = (torch.randperm(len(self.documents), generator=torch.Generator().manual_seed(self.seed + e))
                     if self.shuffle else torch.arange(len(self.documents)))
            docs = [self.documents[i] for i in order.tolist()]
            ids = np.concatenate(docs)
            labels = np.concatenate([np.append(d[1:], -100) for d in docs])
            starts = np.zeros(len(ids), dtype=bool)
            starts[np.cumsum([0] + [len(d) for d in docs[:-1]])] = True
            self._epochs = {e: (ids, labels, starts)}  # one epoch in memory at a time
        return self._epochs[e]

    def rows(self, first, count):
        """input_ids, labels, position_ids [count, seq_len] for rows first .. first + count - 1. Positions
        restart at every document start and at the row's start (a document cut by the row's end
        continues in the next row as a new piece), so the model keeps the pieces apart."""
        ids, labels, positions = [], [], []
        per_epoch = self.epoch_tokens // self.seq_len  # an epoch's last partial row is dropped
        for r in range(first, first + count):
            e, row = divmod(r, per_epoch)
            epoch_ids, epoch_labels, epoch_starts = self._epoch(e)
            piece = slice(row * self.seq_len, (row + 1) * self.seq_len)
            ids.append(epoch_ids[piece])
            labels.append(epoch_labels[piece])
            starts = epoch_starts[piece].copy()
            starts[0] = True
            index = np.arange(self.seq_len)
            positions.append(index - np.maximum.accumulate(np.where(starts, index, 0)))
        return tuple(torch.from_numpy(np.stack(x)) for x in (ids, labels, positions))
