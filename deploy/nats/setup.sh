#!/bin/sh
# Creates the provisioner's streams, consumer and job state bucket with the
# nats CLI (https://github.com/nats-io/natscli), for clusters where the
# worker runs with PROVISIONER_MANAGE_STREAMS=false and NACK is not used.
# The nats CLI context (or NATS_URL, NATS_CREDS...) says which server and
# account. Run from anywhere:
#
#   sh deploy/nats/setup.sh
#
# The definitions are those the worker itself creates with
# PROVISIONER_MANAGE_STREAMS=true, with 3 replicas (a 3-node JetStream
# cluster); deploy/deploy_test.go checks them against the code. The JSON
# durations are nanoseconds: 120000000000 is the 2m duplicate window,
# 604800000000000 the 7 days events are kept.
set -eu
dir=$(dirname "$0")

nats stream add --config "$dir/provision-requests.stream.json"
nats stream add --config "$dir/provision-events.stream.json"
nats consumer add PROVISION_REQUESTS --config "$dir/provisioner.consumer.json"
# The KV bucket has no JSON form in the CLI: its settings are these flags.
nats kv add provision_jobs --history=1 --storage=file --replicas=3 --description="CloudNexus provisioner job state"
