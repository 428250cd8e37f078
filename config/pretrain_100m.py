# The one-GPU rung: masked-diffusion pre-training of a ~100M-parameter model from scratch on a real code corpus.
#   python prepare_data.py --source=<code corpus: a folder, a .jsonl, or a hub dataset such as bigcode/the-stack-smol> \
#       --text_column=content --vocab_size=16384 --out_dir=data/code
#   python train_pretrain.py config/pretrain_100m.py --device=cuda
# then SFT on the tiny tasks and coupled-GRPO with config/sft_tiny.py / config/grpo_tiny.py and
# --init_from=out/pretrain_100m (a larger model learns the tiny tasks far better than the 6.8M CPU model).
out_dir = "out/pretrain_100m"
data_dir = "data/code"
block_size = 1024
# model: 12 layers x 768 wide, 12 query heads sharing 4 k/v heads, SwiGLU 2048; with a 16,384-token vocabulary
# 75.5M block parameters + 2 x 12.6M embedding/LM head = ~101M
n_layer = 12
n_head = 12
n_kv_head = 4
n_embd = 768
intermediate_size = 2048
# 32 x 1024 = 32,768 tokens per step; 20,000 steps = 655M tokens (~6.5 tokens per parameter: a short run)
batch_size = 32
max_steps = 20000
learning_rate = 1e-3
warmup_steps = 500
eval_interval = 1000
ckpt_interval = 1000
dtype = "auto"  # bfloat16 where the CPU/GPU has native bf16 (AVX512-BF16, AMX, CUDA), else float32
# Time (estimate, not measured): 6 x 101M x 655M = 4.0e17 FLOPs (+ attention, ~10%); at 40% MFU of an H100's
# ~990 TFLOP/s bf16 dense that is ~19 min; at 40% of an A100's 312 TFLOP/s ~1 h. Memory: 16 bytes x 101M of
# weights + grads + AdamW = 1.6 GB, activations of 32 x 1024 tokens a few GB: any 24 GB card (lower
# batch_size and raise grad_accum on smaller ones).
