# Masked-diffusion pre-training of a tiny (~7M parameter) model on the stdlib corpus, on a 2-core CPU.
# Prepare the data first: python prepare_data.py   (writes data/stdlib, ~3.4M tokens, vocab 4096)
out_dir = "out/pretrain_tiny"
data_dir = "data/stdlib"
block_size = 256
# model: 6 layers x 256 wide, 4 query heads sharing 2 k/v heads, SwiGLU 768
n_layer = 6
n_head = 4
n_kv_head = 2
n_embd = 256
intermediate_size = 768
# 16 sequences x 256 tokens = 4,096 tokens per step; 1,200 steps = 4.9M tokens, ~1.5 epochs of the 3.4M-token corpus
batch_size = 16
max_steps = 1200
learning_rate = 2e-3
warmup_steps = 30
eval_interval = 200
eval_batches = 8
ckpt_interval = 200
dtype = "auto"  # bfloat16 where the CPU/GPU has native bf16 (AVX512-BF16, AMX, CUDA), else float32
