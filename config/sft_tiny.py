# AR->diffusion adaptation and conditional SFT of the tiny AR model (config/ar_tiny.py) on the tiny tasks: the
# masked-diffusion loss on the answer canvas, attention annealed from causal to bidirectional over the first
# 100 steps (DiffuLLaMA's rule, as DiffuCoder's adaptation of Qwen2.5-Coder; at toy scale the adaptation runs on
# the SFT data itself), then plain bidirectional diffusion SFT (DiffuCoder's stage 3).
# Needs: python train_pretrain.py config/ar_tiny.py
mode = "sft"
init_from = "out/ar_tiny"
out_dir = "out/sft_tiny"
sft_file = "data/tasks/train.jsonl"
probe_file = "data/tasks/train.jsonl"
anneal_steps = 100
# rows: left padding + chat prompt (max 126 tokens) + the 64-token canvas that decoding and GRPO rollouts fill:
# answer + <|im_end|> (max 53) + <|dlm_pad|>s, all supervised, so the model learns where its answer ends
block_size = 192
answer_length = 64
# 8 rows x 192 tokens = 1,536 tokens per step; 1,200 steps = 9,600 rows, 0.5 epochs of the 19,011 train rows
batch_size = 8
max_steps = 1200
# held-out pass@1 (500 tasks) after this stage: 0.336 at lr 3e-4, 0.376 at 6e-4, 0.338 at 1e-3 (docs/results.md)
learning_rate = 6e-4
warmup_steps = 20
eval_interval = 400
eval_batches = 4
ckpt_interval = 400
dtype = "auto"  # bfloat16 where the CPU/GPU has native bf16 (AVX512-BF16, AMX, CUDA), else float32
