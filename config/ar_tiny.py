# The tiny pipeline's autoregressive parent (DiffuCoder adapts the AR coder Qwen2.5-Coder): a 1.6M Qwen2-style model
# trained left to right (causal attention, next-token loss on the answer and its <|im_end|>) on the tiny tasks in
# DiffuCoder's chat format. AR training supervises every answer token and forms the copy mechanism (names, constants,
# literals from the question) within a few minutes, which masked-diffusion training from scratch does not.
# Needs: python prepare_data.py (the tokenizer) && python prepare_data.py --kind=tasks
objective = "ar"
mode = "sft"
init_from = "scratch"
out_dir = "out/ar_tiny"
data_dir = "data/stdlib"  # only its tokenizer (data/stdlib/tokenizer)
sft_file = "data/tasks/train.jsonl"
probe_file = "data/tasks/train.jsonl"
# rows: left padding + chat prompt (~83 tokens, max 126) + a 64-token answer canvas (answer + <|im_end|> max 53)
block_size = 192
answer_length = 64
# model: 4 layers x 128 wide, 4 query heads of 32 sharing 2 k/v heads, SwiGLU 256: 1.64M parameters (1.05M of them
# the two 4,096-row embeddings). The 6 x 256 model (6.8M) that this replaced solved as many held-out tasks (0.372
# against 0.376) at ~4x the time per training row (fp32, AVX2: 1.0 s per 16-row step against 0.12 s per 8 rows)
n_layer = 4
n_head = 4
n_kv_head = 2
n_embd = 128
intermediate_size = 256
# 8 rows x 192 tokens = 1,536 tokens per step; 1,500 steps = 12,000 rows, 0.63 epochs of the 19,011 train rows
batch_size = 8
max_steps = 1500
learning_rate = 2e-3
warmup_steps = 20
eval_interval = 500
eval_batches = 4
ckpt_interval = 500
dtype = "auto"  # bfloat16 where the CPU/GPU has native bf16 (AVX512-BF16, AMX, CUDA), else float32
