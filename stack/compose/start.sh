#!/bin/sh
# Entry point of the seatflow kafka and connect images (stack/compose/Dockerfile): runs the
# broker or the Connect worker in the foreground with the configs rendered at build time, and
# the heap and JVM flags of the local stack (HEAPS and JVM_FLAGS in pipelines/stack/configs.py).
set -eu
CONF=/opt/seatflow/conf
JVM_FLAGS="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true"

run() {
    export KAFKA_HEAP_OPTS="-Xms256m -Xmx768m" KAFKA_JVM_PERFORMANCE_OPTS="$JVM_FLAGS"
    export KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=$CONF/log4j2.properties"
    exec "$@"
}

case "${1:-}" in
    kafka)
        # Format the KRaft storage once, as `seatflow stack up` does (pipelines/stack/kafka.py).
        if [ ! -f /var/lib/kafka/data/meta.properties ]; then
            cluster_id=$(/opt/kafka/bin/kafka-storage.sh random-uuid)
            /opt/kafka/bin/kafka-storage.sh format --standalone --cluster-id "$cluster_id" \
                --config "$CONF/server.properties"
        fi
        run /opt/kafka/bin/kafka-server-start.sh "$CONF/server.properties" ;;
    connect)
        run /opt/kafka/bin/connect-distributed.sh "$CONF/connect-distributed.properties" ;;
    *)
        exec "$@" ;;
esac
