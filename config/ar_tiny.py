# The tiny pipeline's autoregressive parent (DiffuCoder adapts the AR coder Qwen2.5-Coder): a 6.8M Qwen2-style model
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
# model: 6 layers x 256 wide, 4 query heads sharing 2 k/v heads, SwiGLU 768
n_layer = 6
n_head = 4
n_kv_head = 2
n_embd = 256
intermediate_size = 768
# 16 rows x 192 tokens = 3,072 tokens per step; 600 steps = 9,600 rows, 0.5 epochs of the 19,011 train rows
batch_size = 16
max_steps = 600
learning_rate = 1e-3
warmup_steps = 20
eval_interval = 100
eval_batches = 4
ckpt_interval = 200
dtype = "auto"  # bfloat16 where the CPU/GPU has native bf16 (AVX512-BF16, AMX, CUDA), else float32
