"""The tests' argv launcher for Kubernetes kernels, written for kernelgate
from the behaviour Enterprise Gateway documents for its
launch_kubernetes.py (none of EG's code): it takes the same arguments and
environment, renders the kernel-pod.yaml.j2 beside it with jinja2 (every
KERNEL_* variable as a lower-case keyword, KERNEL_VOLUMES and
KERNEL_VOLUME_MOUNTS parsed as YAML, a yaml_safe filter), adds its whole
environment to the first container's env, and creates the pod with the
Kubernetes Python client. It uses Debian's python3-kubernetes,
python3-jinja2 and python3-yaml.
"""

import argparse
import os
import sys

import jinja2
import yaml
from kubernetes import client, config


def yaml_safe(value):
    if isinstance(value, str):
        return yaml.dump(value, default_style='"', width=10000).strip()
    if isinstance(value, (dict, list)):
        return yaml.dump(value, default_flow_style=True, width=10000).strip()
    return yaml.dump(value, width=10000).replace("\n...", "").strip()


def main():
    parser = argparse.ArgumentParser()
    for name in ("kernel-id", "port-range", "response-address", "public-key",
                 "spark-context-initialization-mode", "kernel-class-name"):
        dest = name.replace("-", "_")
        parser.add_argument("--" + name, dest=dest)
        parser.add_argument("--RemoteProcessProxy." + name, dest="old_" + dest)
    args = vars(parser.parse_args())

    def arg(name):
        return args[name] or args["old_" + name]

    settings = {
        "PORT_RANGE": arg("port_range"),
        "PUBLIC_KEY": arg("public_key"),
        "RESPONSE_ADDRESS": arg("response_address"),
        "KERNEL_ID": arg("kernel_id"),
        "KERNEL_SPARK_CONTEXT_INIT_MODE": arg("spark_context_initialization_mode") or "none",
        "KERNEL_CLASS_NAME": arg("kernel_class_name"),
    }
    for name, value in settings.items():
        if value:
            os.environ[name] = value
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["KERNEL_NAME"] = os.path.basename(os.path.dirname(here))

    keywords = {}
    for name, value in os.environ.items():
        if not name.startswith("KERNEL_"):
            continue
        if name in ("KERNEL_VOLUMES", "KERNEL_VOLUME_MOUNTS"):
            value = yaml.safe_load(value)
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                sys.exit(name + " must be a YAML list of mappings")
        keywords[name.lower()] = value

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(here), trim_blocks=True, lstrip_blocks=True)
    env.filters["yaml_safe"] = yaml_safe
    rendered = env.get_template("kernel-pod.yaml.j2").render(**keywords)

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    api = client.CoreV1Api()
    namespace = keywords["kernel_namespace"]
    for doc in yaml.safe_load_all(rendered):
        if not doc:
            continue
        if doc.get("kind") != "Pod":
            sys.exit("this launcher creates pods only, not " + str(doc.get("kind")))
        container = doc["spec"]["containers"][0]
        listed = container.get("env") or []
        names = {item["name"] for item in listed}
        for item in listed:
            if item["name"] in os.environ:
                item["value"] = os.environ[item["name"]]
                item.pop("valueFrom", None)
        listed += [{"name": k, "value": v} for k, v in os.environ.items() if k not in names]
        container["env"] = listed
        api.create_namespaced_pod(namespace=namespace, body=doc)


if __name__ == "__main__":
    main()
