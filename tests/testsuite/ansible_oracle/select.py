# Ansible's own selection for each --limit pattern: argv[1] is the inventory,
# argv[2] a JSON list of patterns. Prints, per pattern, {"hosts": [...],
# "unmatched": [the parts Ansible warns about: "Could not match supplied
# host pattern, ignoring"]} or {"error": ...}.
import json
import sys

from ansible.inventory.manager import InventoryManager, split_host_pattern
from ansible.parsing.dataloader import DataLoader

inventory = InventoryManager(loader=DataLoader(), sources=[sys.argv[1]])
groups = inventory._inventory.groups


def unmatched(part):
    base, _ = inventory._split_subscript(part.lstrip("!&"))
    if base in inventory._inventory.hosts or base == "all":
        return False
    return not inventory._match_list(groups, base) and not inventory._enumerate_matches(base)


out = {}
for pattern in json.loads(sys.argv[2]):
    try:
        inventory.subset(pattern)
        out[pattern] = {
            "hosts": [h.name for h in inventory.get_hosts("all")],
            "unmatched": [p for p in split_host_pattern(pattern) if unmatched(p)],
        }
    except Exception as e:  # an AnsibleError is one line for the report
        out[pattern] = {"error": str(e)}
print(json.dumps(out))
