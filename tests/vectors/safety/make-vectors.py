#!/usr/bin/python3
"""make-vectors.py -- regenerate the small safety-classification fixtures in this directory.
Used by tests/unit/test_safety.c and tests/e2e/inspect_safety.sh. Needs only the standard
library (no torch): torch.save's zip layout is imitated with zipfile. Run from this directory."""
import collections
import io
import pickle
import zipfile

obj = {"weight": [1.0, 2.0, 3.0], "name": "layer0", "n": 3}

for proto in (0, 1, 2, 4, 5):
    ext = {0: "pkl", 1: "bin", 2: "pt", 4: "pth", 5: "ckpt"}[proto]
    with open(f"pickle-p{proto}.{ext}", "wb") as f:
        f.write(pickle.dumps(obj, protocol=proto))

# a protocol 2 pickle under a name that says nothing: found by its PROTO opcode alone
with open("pickle-p2-noext.dat", "wb") as f:
    f.write(pickle.dumps(obj, protocol=2))

# protocol 0 stream that imports a callable, under a text name: found because the whole file is
# a clean opcode stream ending in STOP. It only calls print().
with open("pickle-p0-global.txt", "wb") as f:
    f.write(b"cbuiltins\nprint\n(S'hello from a pickle'\ntR.")

# a state_dict-like OrderedDict: GLOBAL (protocol 2) and STACK_GLOBAL via memo (protocol 4)
state = collections.OrderedDict([("w", [1.0, 2.0]), ("b", [0.5])])
for proto in (2, 4):
    with open(f"ordered-p{proto}.pkl", "wb") as f:
        f.write(pickle.dumps(state, protocol=proto))

# torch.save layout: archive/data.pkl, archive/data/0, archive/version
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", pickle.dumps(state, protocol=2))
    z.writestr("archive/data/0", bytes(range(256)) * 4)
    z.writestr("archive/version", "3\n")
with open("torch-zip.pt", "wb") as f:
    f.write(buf.getvalue())

# a zip with no pickle member
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("readme.txt", "just text\n" * 20)
with open("plain.zip", "wb") as f:
    f.write(buf.getvalue())

# inert files that must not be flagged
with open("config.json", "w") as f:
    f.write('{"architectures": ["LlamaForCausalLM"], "hidden_size": 256}\n')
with open("model-card.md", "w") as f:
    f.write("# model\n\n(c) some text. Not a pickle.\n")
with open("script.sh", "w") as f:
    f.write("#!/bin/sh\necho hi\n")
with open("modeling_x.py", "w") as f:
    f.write("import os\nprint('remote code')\n")
