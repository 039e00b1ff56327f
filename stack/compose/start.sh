#!/bin/sh
# Entry point of the seatflow kafka and connect images (stack/compose/Dockerfile): runs the
# KRaft controller, the broker or the Connect worker in the foreground with the configs rendered
# at build time, and the heaps and JVM flags of the local stack (HEAPS and JVM_FLAGS in
# pipelines/stack/configs.py).
set -eu
CONF=/opt/seatflow/conf
SECRETS=/opt/seatflow/secrets
JVM_FLAGS="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true"

run() {
    export KAFKA_HEAP_OPTS="${HEAP:--Xms256m -Xmx768m}" KAFKA_JVM_PERFORMANCE_OPTS="$JVM_FLAGS"
    export KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=$CONF/log4j2.properties"
    exec "$@"
}

# Format each node's KRaft storage once, as `seatflow stack up` does (pipelines/stack/kafka.py),
# with the cluster id both containers are given (KAFKA_CLUSTER_ID in docker-compose.yml).
format_once() {  # DATA_DIR PROPERTIES [ARGS...]
    data=$1 properties=$2
    shift 2
    if [ ! -f "$data/meta.properties" ]; then
        /opt/kafka/bin/kafka-storage.sh format "$@" --cluster-id "${KAFKA_CLUSTER_ID:?}" \
            --config "$CONF/$properties"
    fi
}

# Kafka's logins (SASL/SCRAM-SHA-512, stack/conf/server.properties): each JVM reads its own
# password from a file in the secrets folder (0600) through the FileConfigProvider, as the local
# stack's do (pipelines/stack/kafka.py KAFKA_SECRET_FILES). The variables are not SEATFLOW_*
# names (the Connect worker's ${env:...} lookups read those) and leave the environment before
# the JVM starts.
secret_file() {  # NAME PASSWORD
    (umask 077; printf 'password=%s\n' "$2" > "$SECRETS/$1")
}
SECRETS=/opt/seatflow/secrets
if [ -n "${KAFKA_ADMIN_PASSWORD:-}" ]; then
    secret_file kafka-admin.properties "$KAFKA_ADMIN_PASSWORD"
    # For the broker's healthcheck (kafka-broker-api-versions.sh --command-config).
    (umask 077; printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=SCRAM-SHA-512" \
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$KAFKA_ADMIN_PASSWORD\";" \
        > "$SECRETS/admin-client.properties")
fi
if [ -n "${KAFKA_CONNECT_PASSWORD:-}" ]; then
    secret_file kafka-connect.properties "$KAFKA_CONNECT_PASSWORD"
fi

# Kept as shell variables (not exported) for the controller's format, then out of the
# environment.
admin_pw=${KAFKA_ADMIN_PASSWORD:-} connect_pw=${KAFKA_CONNECT_PASSWORD:-}
processor_pw=${KAFKA_PROCESSOR_PASSWORD:-} reader_pw=${KAFKA_READER_PASSWORD:-}
unset KAFKA_ADMIN_PASSWORD KAFKA_CONNECT_PASSWORD KAFKA_PROCESSOR_PASSWORD KAFKA_READER_PASSWORD

case "${1:-}" in
    controller)
        # The SCRAM users go into the bootstrap metadata, which the controller holds. (On the
        # command line of a short-lived process inside the container.)
        format_once /var/lib/kafka/controller controller.properties --standalone \
            --add-scram "SCRAM-SHA-512=[name=admin,password=${admin_pw:?KAFKA_ADMIN_PASSWORD}]" \
            --add-scram "SCRAM-SHA-512=[name=connect,password=${connect_pw:?KAFKA_CONNECT_PASSWORD}]" \
            --add-scram "SCRAM-SHA-512=[name=processor,password=${processor_pw:?KAFKA_PROCESSOR_PASSWORD}]" \
            --add-scram "SCRAM-SHA-512=[name=reader,password=${reader_pw:?KAFKA_READER_PASSWORD}]"
        HEAP="-Xms64m -Xmx256m"
        run /opt/kafka/bin/kafka-server-start.sh "$CONF/controller.properties" ;;
    kafka)
        format_once /var/lib/kafka/data server.properties
        run /opt/kafka/bin/kafka-server-start.sh "$CONF/server.properties" ;;
    connect)
        # The REST API's basic auth (rest.extension.classes): its users file, named by
        # connect-jaas.conf, written (0600) from CONNECT_REST_USER and CONNECT_REST_PASSWORD at
        # every start. Not SEATFLOW_* names, so connector configs cannot read them through
        # ${env:...}; and the password leaves the environment before the worker starts.
        (umask 077; printf '%s=%s\n' "${CONNECT_REST_USER:?}" \
            "$(printf '%s' "${CONNECT_REST_PASSWORD:?}" | sed 's/\\/\\\\/g')" \
            > "$SECRETS/connect-users.properties")
        unset CONNECT_REST_PASSWORD
        export KAFKA_OPTS="-Djava.security.auth.login.config=$CONF/connect-jaas.conf"
        run /opt/kafka/bin/connect-distributed.sh "$CONF/connect-distributed.properties" ;;
    *)
        exec "$@" ;;
esac
