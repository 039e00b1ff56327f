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
format_once() {  # DATA_DIR PROPERTIES [FLAG]
    if [ ! -f "$1/meta.properties" ]; then
        /opt/kafka/bin/kafka-storage.sh format ${3:-} --cluster-id "${KAFKA_CLUSTER_ID:?}" \
            --config "$CONF/$2"
    fi
}

case "${1:-}" in
    controller)
        format_once /var/lib/kafka/controller controller.properties --standalone
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
