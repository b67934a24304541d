"""Independent PyTorch SASRec, following the IDvs.MoRec ("ID- vs Modality-based
Recommender Models Revisited") ID-based SASRec.

This is the single copy of the reference model. It is imported by
  - test/fixtures/make_sasrec_fixture.py  (golden-value fixture for the C++ core)
  - bench/sasrec_reference.py              (PyTorch-eager benchmark)

Parameter names (state_dict keys) are the ones the C++ core and the fixture use:
  item_tower.id_embedding.weight                     [N+1, d]   (row 0 = padding)
  user_encoder.position_embedding.weight             [L, d]
  user_encoder.layer_norm.{weight,bias}              [d]        eps 1e-6
  user_encoder.blocks.{i}.attention.w_Q.weight       [d, d]     no bias
  user_encoder.blocks.{i}.attention.w_K.weight       [d, d]     no bias
  user_encoder.blocks.{i}.attention.w_V.weight       [d, d]     no bias
  user_encoder.blocks.{i}.attention.fc.weight        [d, d]     no bias
  user_encoder.blocks.{i}.attention.layer_norm.{weight,bias}    eps 1e-6
  user_encoder.blocks.{i}.feed_forward.w_1.{weight,bias}  [4d, d], [4d]
  user_encoder.blocks.{i}.feed_forward.w_2.{weight,bias}  [d, 4d], [d]
  user_encoder.blocks.{i}.feed_forward.layer_norm.{weight,bias} eps 1e-6

Semantics:
  * input ids [B, T] are left-padded with 0, T <= L; column c gets position
    index L - T + c (the last column always has position L - 1).
  * x = dropout(LayerNorm(item_emb(ids) + pos_emb(positions)))
  * additive float mask [B, 1, T, T]: 0 where key j <= query i and key j is
    not padding, else -1e9 (finite, as torch.where(mask, 0., -1e9) in the paper).
  * n post-LN blocks: MHA (scores = q k^T / sqrt(d/h) + mask, softmax, dropout,
    @ v, merge heads, dropout(fc(.)), LayerNorm(x + .)), then FFN
    (LayerNorm(x + dropout(w_2(relu(w_1(x)))))).
  * output hidden states [B, T, d]; rows at padding positions are exactly 0.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-6
MASK_VALUE = -1e9


class MultiHeadedAttention(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        assert d % heads == 0, "d must be divisible by heads"
        self.d = d
        self.heads = heads
        self.d_k = d // heads
        self.w_Q = nn.Linear(d, d, bias=False)
        self.w_K = nn.Linear(d, d, bias=False)
        self.w_V = nn.Linear(d, d, bias=False)
        self.fc = nn.Linear(d, d, bias=False)
        self.layer_norm = nn.LayerNorm(d, eps=LN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = nn.Dropout(dropout)

    def forward(self, x, mask):
        B, T, _ = x.shape
        h, dk = self.heads, self.d_k
        q = self.w_Q(x).view(B, T, h, dk).transpose(1, 2)  # [B, h, T, dk]
        k = self.w_K(x).view(B, T, h, dk).transpose(1, 2)
        v = self.w_V(x).view(B, T, h, dk).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(dk) + mask
        probs = self.attn_dropout(torch.softmax(scores, dim=-1))
        y = torch.matmul(probs, v).transpose(1, 2).contiguous().view(B, T, self.d)
        y = self.dropout(self.fc(y))
        return self.layer_norm(x + y)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, d, d_inner, dropout):
        super().__init__()
        self.w_1 = nn.Linear(d, d_inner)
        self.w_2 = nn.Linear(d_inner, d)
        self.layer_norm = nn.LayerNorm(d, eps=LN_EPS)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        y = self.dropout(self.w_2(F.relu(self.w_1(x))))
        return self.layer_norm(x + y)


class TransformerBlock(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.attention = MultiHeadedAttention(d, heads, dropout)
        self.feed_forward = PositionwiseFeedForward(d, 4 * d, dropout)

    def forward(self, x, mask):
        return self.feed_forward(self.attention(x, mask))


class UserEncoder(nn.Module):
    def __init__(self, d, heads, blocks, max_len, dropout):
        super().__init__()
        self.max_len = max_len
        self.position_embedding = nn.Embedding(max_len, d)
        self.layer_norm = nn.LayerNorm(d, eps=LN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([TransformerBlock(d, heads, dropout) for _ in range(blocks)])

    @staticmethod
    def attention_mask(ids, dtype):
        """Additive mask [B, 1, T, T]: 0 where key j <= query i and ids[b, j] != 0."""
        B, T = ids.shape
        key_ok = (ids != 0).view(B, 1, 1, T).expand(B, 1, T, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=ids.device).tril()
        allowed = key_ok & causal
        zero = torch.zeros((), dtype=dtype, device=ids.device)
        neg = torch.full((), MASK_VALUE, dtype=dtype, device=ids.device)
        return torch.where(allowed, zero, neg)

    def forward(self, input_embs, ids):
        B, T = ids.shape
        assert T <= self.max_len, "window wider than maxLen"
        positions = torch.arange(self.max_len - T, self.max_len, device=ids.device)
        x = self.layer_norm(input_embs + self.position_embedding(positions).unsqueeze(0))
        x = self.dropout(x)
        mask = self.attention_mask(ids, x.dtype)
        for block in self.blocks:
            x = block(x, mask)
        return x * (ids != 0).unsqueeze(-1).to(x.dtype)


class ItemTower(nn.Module):
    def __init__(self, num_items, d):
        super().__init__()
        # padding_idx=0 as in the paper: row 0 gets no gradient (but it is still
        # Xavier-initialised, i.e. not zero, exactly like the paper's code).
        self.id_embedding = nn.Embedding(num_items + 1, d, padding_idx=0)

    def forward(self, ids):
        return self.id_embedding(ids)


class SASRec(nn.Module):
    def __init__(self, num_items, d, heads, blocks, max_len, dropout=0.1):
        super().__init__()
        self.num_items = num_items
        self.d = d
        self.max_len = max_len
        self.item_tower = ItemTower(num_items, d)
        self.user_encoder = UserEncoder(d, heads, blocks, max_len, dropout)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Embedding):
            nn.init.xavier_normal_(module.weight.data)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight.data)
            if module.bias is not None:
                nn.init.constant_(module.bias.data, 0.0)
        elif isinstance(module, nn.LayerNorm):
            nn.init.constant_(module.weight.data, 1.0)
            nn.init.constant_(module.bias.data, 0.0)

    def forward(self, ids):
        """ids: int64 [B, T] left-padded -> hidden [B, T, d] (padding rows = 0)."""
        return self.user_encoder(self.item_tower(ids), ids)

    def item_embeddings(self):
        return self.item_tower.id_embedding.weight

    def bce_loss(self, inputs, targets, negatives):
        """Paper's training loss: BCE(pos, 1) + BCE(neg, 0) over non-pad positions."""
        hidden = self.forward(inputs)
        pos = (hidden * self.item_tower(targets)).sum(-1)
        neg = (hidden * self.item_tower(negatives)).sum(-1)
        valid = inputs != 0
        pos_v, neg_v = pos[valid], neg[valid]
        return (F.binary_cross_entropy_with_logits(pos_v, torch.ones_like(pos_v))
                + F.binary_cross_entropy_with_logits(neg_v, torch.zeros_like(neg_v)))
