// Validates custom resources against the schemas of the npm packages beside this file
// (installed by `make install`; nothing is fetched here). Reads a JSON array of resources on
// stdin, prints a JSON array of {kind, name, errors} (errors empty: valid).
//
// CloudNativePG's Cluster and ScheduledBackup and the Prometheus operator's PodMonitor and
// PrometheusRule: their whole schema. The Barman Cloud plugin's ObjectStore has no package: its
// spec.configuration is the same type as CloudNativePG's barmanObjectStore, and is checked with
// that schema; the rest of it only for its shape.
import { Cluster } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Cluster";
import { ScheduledBackup } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/ScheduledBackup";
import { BarmanObjectStoreConfiguration } from "@kubernetes-models/cloudnative-pg/github.com/cloudnative-pg/barman-cloud/pkg/api/BarmanObjectStoreConfiguration";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const MODELS = {
  "postgresql.cnpg.io/v1/Cluster": Cluster,
  "postgresql.cnpg.io/v1/ScheduledBackup": ScheduledBackup,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};
const OBJECT_STORE_SPEC = new Set(["configuration", "retentionPolicy", "instanceSidecarConfiguration"]);

function check(resource) {
  const key = `${resource.apiVersion}/${resource.kind}`;
  if (key === "barmancloud.cnpg.io/v1/ObjectStore") {
    const errors = [];
    const spec = resource.spec ?? {};
    for (const field of Object.keys(spec)) {
      if (!OBJECT_STORE_SPEC.has(field)) errors.push(`spec.${field}: not a field of ObjectStore`);
    }
    if (spec.retentionPolicy !== undefined && !/^[1-9][0-9]*[dwm]$/.test(spec.retentionPolicy)) {
      errors.push(`spec.retentionPolicy: ${spec.retentionPolicy} is not like 30d, 4w or 6m`);
    }
    if (spec.configuration === undefined) errors.push("spec.configuration: required");
    else errors.push(...validate(BarmanObjectStoreConfiguration, spec.configuration));
    return errors;
  }
  const Model = MODELS[key];
  if (Model === undefined) return [`no schema here for ${key}`];
  return validate(Model, resource);
}

function validate(Model, data) {
  try {
    new Model(data).validate();
    return [];
  } catch (error) {
    return [String(error.message ?? error)];
  }
}

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((resource) => ({
  kind: resource.kind,
  name: resource.metadata?.name,
  errors: check(resource),
}));
process.stdout.write(JSON.stringify(results));
