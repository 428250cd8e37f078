# Conditional SFT of the tiny pre-trained model on the tiny code tasks (DiffuCoder's stage 3, at toy scale).
# Needs: python prepare_data.py && python prepare_data.py --kind=tasks && python train_pretrain.py config/pretrain_tiny.py
mode = "sft"
init_from = "out/pretrain_tiny"
out_dir = "out/sft_tiny"
sft_file = "data/tasks/train.jsonl"
# chat prompt ~83 tokens (max 126) + answer + <|im_end|> (max 52): the longest record is 163 tokens; the rest of 192 is <|dlm_pad|>
block_size = 192
# 16 rows x 192 tokens = 3,072 tokens per step; 2,000 steps = 32,000 rows, 1.6 epochs of the 20,000 train tasks
batch_size = 16
max_steps = 2000
learning_rate = 1e-3
warmup_steps = 20
eval_interval = 250
eval_batches = 4
ckpt_interval = 250
dtype = "bfloat16"
