"""Pair losses, one call signature: ``loss(s, y, t) -> scalar``.

Conventions: ``s_i`` is the student's cosine similarity for pair i, ``y_i`` in {0, 1} its label and
``t_i`` the teacher's similarity (ignored by losses that do not use a teacher). P = {i: y_i = 1},
N = {i: y_i = 0}; a mean over an empty set is 0.
"""

from __future__ import annotations

import torch
from torch import nn


def _mean_or_zero(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    count = mask.sum()
    return (values * mask).sum() / count.clamp(min=1)


def cosent_loss(similarities: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None = None,
                scale: float = 20.0) -> torch.Tensor:
    """CoSENT (Su, 2022), labels only: L = log(1 + sum_{(i,j): y_i > y_j} exp(scale * (s_j - s_i))).

    Every pair ranked above another by its label must have the larger cosine. With no ordered pairs
    in the batch (one class only) the loss is log(1) = 0. The teacher is not used.
    """
    differences = scale * (similarities[None, :] - similarities[:, None])
    ordered = labels[:, None] > labels[None, :]
    masked = differences.masked_fill(~ordered, float("-inf")).flatten()
    zero = torch.zeros(1, dtype=masked.dtype, device=masked.device)
    return torch.logsumexp(torch.cat([zero, masked]), dim=0)


def distillation_loss(similarities: torch.Tensor, labels: torch.Tensor,
                      teacher: torch.Tensor) -> torch.Tensor:
    """L_dist = mean_i (s_i - t_i)^2: the student reproduces the teacher's similarity of each pair."""
    return torch.mean((similarities - teacher) ** 2)


def margin_contrastive_loss(similarities: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor,
                            margin: float = 0.2, gap_scale: float = 1.0) -> torch.Tensor:
    """MCL (our reading of the paper's two margin zones) = L_inter + L_intra.

    L_inter = mean_{i in P, j in N} max(0, m - (s_i - s_j))
        every positive above every negative by at least the margin m;
    L_intra = mean_{(i, j) same class, t_i > t_j} max(0, g * (t_i - t_j) - (s_i - s_j))
        within each class the student orders pairs as the teacher does, by a margin that grows with the
        teacher's gap (g = ``gap_scale``).
    """
    positive = labels.bool()
    difference = similarities[:, None] - similarities[None, :]
    inter_mask = (positive[:, None] & ~positive[None, :]).to(similarities.dtype)
    inter = _mean_or_zero(torch.relu(margin - difference), inter_mask)
    teacher_gap = teacher[:, None] - teacher[None, :]
    same_class = positive[:, None] == positive[None, :]
    intra_mask = (same_class & (teacher_gap > 0)).to(similarities.dtype)
    intra = _mean_or_zero(torch.relu(gap_scale * teacher_gap - difference), intra_mask)
    return inter + intra


def embedding_loss(projected: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_embed = mean_i ||p_i / ||p_i|| - e_i||^2 = mean_i 2 (1 - cos(p_i, e_i)) for unit targets e_i:
    the student's projected representation points where the teacher's embedding of the same text does."""
    return torch.mean(torch.sum((nn.functional.normalize(projected, dim=-1) - targets) ** 2, dim=-1))


def listwise_loss(student: torch.Tensor, teacher: torch.Tensor, texts: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """L_list = mean_i KL(p_i || q_i), p_i = softmax_j(e_i . e_j / T), q_i = softmax_j(z_i . z_j / T), j over
    the batch's texts other than i's (``texts``: one id per row; a row's own text and its repeats are
    left out): each text orders its batch neighbours as the teacher does, most weight on the nearest.
    ``student`` (n, d) and ``teacher`` (n, d') are unit rows."""
    other = texts[:, None] != texts[None, :]

    def ranking(rows: torch.Tensor) -> torch.Tensor:
        logits = rows.float() @ rows.float().T / temperature
        return torch.log_softmax(logits.masked_fill(~other, torch.finfo(torch.float32).min), dim=-1)

    log_p, log_q = ranking(teacher), ranking(student)
    return torch.mean(torch.sum(torch.where(other, log_p.exp() * (log_p - log_q), 0.0), dim=-1))


def weak_to_strong_targets(student: torch.Tensor, teacher: torch.Tensor, threshold: float, low: float,
                           high: float, alpha: float) -> torch.Tensor:
    """Targets of the unlabelled pair term with a confidence term (Burns et al., 2023, in regression
    form): ``(1 - alpha) t_u + alpha h_u``, h_u = ``high`` where s_u is among the k largest student
    cosines of the batch, else ``low``; k = #{u: t_u >= threshold}, so the student's hardened labels keep
    the teacher's class balance. Where the student confidently disagrees with the teacher, the target
    moves towards the student's side; no gradient flows through h."""
    positives = int((teacher >= threshold).sum())
    hardened = torch.full_like(teacher, low)
    if positives:
        hardened[torch.topk(student.detach(), positives).indices] = high
    return (1 - alpha) * teacher + alpha * hardened
