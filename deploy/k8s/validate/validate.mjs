// Validates Kubernetes manifests offline against the Kubernetes OpenAPI schema (the
// kubernetes-models classes, generated from it) and the Prometheus Operator CRDs
// (@kubernetes-models/prometheus-operator).
//
//   node validate.mjs DIR_OR_FILE...
//
// A directory means the files its kustomization.yaml lists under `resources:` (and every
// other *.yaml there must be listed, apart from the adapter rules snippet); a file is
// validated as it is. Every YAML document must be a known apiVersion/kind and pass its
// schema. The generated validators ignore fields the schema does not name, so unknown
// fields are found here: each object is validated through a Proxy that records which
// properties the validator reads, and a property it never read is unknown. Objects the
// validator enumerates (maps such as labels or ConfigMap data) accept any key; objects
// of which it read nothing are free-form in the schema (x-kubernetes-preserve-unknown-fields)
// and not checked. Prints one line per object; exit status 1 on any error.
import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";

const KINDS = {
  "v1/ConfigMap": "kubernetes-models/v1/ConfigMap",
  "v1/Secret": "kubernetes-models/v1/Secret",
  "v1/Service": "kubernetes-models/v1/Service",
  "v1/ServiceAccount": "kubernetes-models/v1/ServiceAccount",
  "v1/Namespace": "kubernetes-models/v1/Namespace",
  "apps/v1/Deployment": "kubernetes-models/apps/v1/Deployment",
  "autoscaling/v2/HorizontalPodAutoscaler": "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler",
  "policy/v1/PodDisruptionBudget": "kubernetes-models/policy/v1/PodDisruptionBudget",
  "networking.k8s.io/v1/NetworkPolicy": "kubernetes-models/networking.k8s.io/v1/NetworkPolicy",
  "monitoring.coreos.com/v1/ServiceMonitor":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
  "monitoring.coreos.com/v1/PrometheusRule":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
};
// Files in a manifest directory that are not Kubernetes objects.
const NOT_MANIFESTS = new Set(["kustomization.yaml", "prometheus-adapter-rules.yaml"]);

// kustomize's Kustomization fields (kustomize.config.k8s.io/v1beta1) that a base uses.
const KUSTOMIZATION_FIELDS = new Set([
  "apiVersion", "kind", "metadata", "resources", "components", "namespace", "namePrefix",
  "nameSuffix", "labels", "commonLabels", "commonAnnotations", "images", "replicas",
  "patches", "configMapGenerator", "secretGenerator", "generatorOptions",
]);

// A deep proxy of value that records, per plain object, the keys read and whether the
// object was enumerated.
function traced(value, records, where) {
  if (value === null || typeof value !== "object") return value;
  const record = { where, object: value, read: new Set(), enumerated: false };
  if (!Array.isArray(value)) records.push(record);
  const children = new Map();
  return new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === "string") record.read.add(key);
      const child = Reflect.get(target, key, receiver);
      if (typeof key !== "string" || child === null || typeof child !== "object") return child;
      if (!children.has(key)) children.set(key, traced(child, records, `${where}/${key}`));
      return children.get(key);
    },
    has(target, key) {
      if (typeof key === "string") record.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      record.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

async function validateObject(doc) {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    return ["not a YAML mapping"];
  }
  const id = `${doc.apiVersion}/${doc.kind}`;
  const module = KINDS[id];
  if (!module) return [`unknown apiVersion/kind ${id} (known: ${Object.keys(KINDS).join(", ")})`];
  const Model = (await import(module))[doc.kind];
  const model = new Model(doc);
  const records = [];
  const errors = [];
  try {
    // The class's own validate(), on a traced copy of the model.
    model.validate.call(traced(model.toJSON(), records, ""));
  } catch (error) {
    errors.push(error.message);
  }
  for (const { where, object, read, enumerated } of records) {
    if (enumerated || read.size === 0) continue;
    for (const key of Object.keys(object)) {
      if (!read.has(key)) errors.push(`data${where} has unknown field "${key}"`);
    }
  }
  return errors;
}

function manifestFiles(target) {
  if (!fs.statSync(target).isDirectory()) return { files: [target], errors: [] };
  const errors = [];
  const kustomization = path.join(target, "kustomization.yaml");
  if (!fs.existsSync(kustomization)) return { files: [], errors: [`${target}: no kustomization.yaml`] };
  const spec = yaml.load(fs.readFileSync(kustomization, "utf8"));
  for (const key of Object.keys(spec)) {
    if (!KUSTOMIZATION_FIELDS.has(key)) errors.push(`${kustomization}: unknown field "${key}"`);
  }
  const listed = spec.resources || [];
  const files = listed.map((name) => path.join(target, name));
  for (const file of files) {
    if (!fs.existsSync(file)) errors.push(`${kustomization}: resource ${file} does not exist`);
  }
  for (const name of fs.readdirSync(target)) {
    if (/\.ya?ml$/.test(name) && !NOT_MANIFESTS.has(name) && !listed.includes(name)) {
      errors.push(`${path.join(target, name)}: not listed in kustomization.yaml resources`);
    }
  }
  return { files: files.filter((f) => fs.existsSync(f)), errors };
}

let failed = 0;
const targets = process.argv.slice(2);
if (targets.length === 0) {
  console.error("usage: node validate.mjs DIR_OR_FILE...");
  process.exit(2);
}
for (const target of targets) {
  const { files, errors } = manifestFiles(target);
  for (const error of errors) {
    console.log(`FAIL ${error}`);
    failed++;
  }
  for (const file of files) {
    let docs;
    try {
      docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d !== null && d !== undefined);
    } catch (error) {
      console.log(`FAIL ${file}: ${error.message}`);
      failed++;
      continue;
    }
    if (docs.length === 0) {
      console.log(`FAIL ${file}: no YAML documents`);
      failed++;
    }
    for (const doc of docs) {
      const name = `${file}: ${doc?.kind}/${doc?.metadata?.name}`;
      const problems = await validateObject(doc);
      if (problems.length === 0) {
        console.log(`ok   ${name}`);
      } else {
        for (const problem of problems) console.log(`FAIL ${name}: ${problem}`);
        failed++;
      }
    }
  }
}
console.log(failed === 0 ? "all valid" : `${failed} invalid`);
process.exit(failed === 0 ? 0 : 1);
