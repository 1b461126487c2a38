"""Published numbers of the SANA-Sprint paper (arXiv 2503.09641, v1 tables; 1024x1024, MJHQ-30K FID, CLIP ViT-L/14,
official GenEval, A100 BF16), shown beside ours for reference only: a different benchmark and scale."""

SOURCE = "SANA-Sprint paper (Chen et al. 2025, arXiv 2503.09641), its own benchmark: MJHQ-30K FID, CLIP ViT-L/14, " \
         "GenEval; 1024px, A100"

# Table 2 (subset): method, steps, throughput img/s, latency s, params B, FID, CLIP, GenEval
TABLE2 = [
    ("SANA 1.6B (teacher)", 20, 1.0, 1.2, 1.6, 5.76, 28.67, 0.66),
    ("SANA-Sprint 1.6B", 4, 5.20, 0.31, 1.6, 6.66, 28.38, 0.77),
    ("SANA-Sprint 1.6B", 2, 5.68, 0.24, 1.6, 6.76, 28.32, 0.77),
    ("SANA-Sprint 1.6B", 1, 6.71, 0.21, 1.6, 7.59, 28.00, 0.74),
]

# Table 3 (loss ablation, 2 steps [pi/2, 1.0, 0]): method, FID, CLIP
TABLE3 = [("sCM only", 8.93, 27.51), ("LADD only", 12.20, 27.00), ("sCM + LADD", 8.11, 28.02)]

# Tables 4-6 and 8: axis, setting, FID, CLIP
AXES = [
    ("CFG embedding", "w/o embedding", 9.23, 27.15), ("CFG embedding", "w/ embedding (default)", 8.72, 28.09),
    ("sCM : LADD", "1 : 1", 8.81, 27.93), ("sCM : LADD", "1 : 0.5 (default)", 8.43, 27.85),
    ("sCM : LADD", "1 : 0.1", 8.90, 27.76),
    ("max-time p", "0 %", 9.44, 27.65), ("max-time p", "50 % (default)", 8.32, 27.94),
    ("max-time p", "70 %", 8.11, 28.02),
    ("D noise (P_mean, P_std)", "(-0.6, 1.0) default", 9.48, 28.08), ("D noise (P_mean, P_std)", "(-0.6, 2.0)", 10.36, 28.03),
    ("D noise (P_mean, P_std)", "(0.0, 1.0)", 13.11, 27.18),
]
