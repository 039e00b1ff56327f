package io.seatflow.connect;

import io.apicurio.registry.resolver.ParsedSchema;
import io.apicurio.registry.resolver.SchemaParser;
import io.apicurio.registry.resolver.data.Record;
import io.apicurio.registry.serde.avro.AvroKafkaDeserializer;
import io.apicurio.registry.serde.avro.AvroKafkaSerializer;
import io.apicurio.registry.utils.converter.AvroConverter;

import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Map;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericContainer;

/**
 * Apicurio's {@link AvroConverter} (2.6), whose serializer writes each Avro schema out as JSON
 * once, not once per record.
 *
 * <p>For every record, the 2.6 resolver asks its parser for the record's schema as text
 * ({@code AvroSchemaParser.getSchemaFromData}: {@code Schema.toString()}, a Jackson walk of the
 * whole Debezium envelope) only to look that text up in its cache of registered schemas. Java
 * Flight Recorder on Connect during {@code seatflow bench latency --rate 3000} put a third of the
 * task thread's samples there (docs/performance.md). The converter's {@code AvroData} hands out
 * one {@link Schema} object per Connect schema (its own cache), so the parsed schema is kept here
 * by that object's identity: the same object always gives the same text. Identity, not
 * {@code Schema.equals}, because Avro's equality ignores docs, which the text holds.
 */
public class SchemaCachingAvroConverter<T> extends AvroConverter<T> {

    @Override
    public void configure(Map<String, ?> configs, boolean isKey) {
        // AvroConverter makes its serializer and deserializer only when the configs name none
        // (putIfAbsent), and SerdeBasedConverter takes instances of Apicurio's as they are. Both
        // are needed: the deserializer is configured last, on the serializer's resolver, and
        // its parser is the one that resolver keeps.
        Map<String, Object> withSerdes = new HashMap<>(configs);
        withSerdes.putIfAbsent(REGISTRY_CONVERTER_SERIALIZER_PARAM, new CachingSerializer<>());
        withSerdes.putIfAbsent(REGISTRY_CONVERTER_DESERIALIZER_PARAM, new CachingDeserializer<>());
        super.configure(withSerdes, isKey);
    }

    /** Apicurio's Avro serializer, with the caching parser. */
    public static class CachingSerializer<U> extends AvroKafkaSerializer<U> {

        private final Wrapped<U> wrapped = new Wrapped<>();

        @Override
        public SchemaParser<Schema, U> schemaParser() {
            return wrapped.around(super.schemaParser());
        }
    }

    /** Apicurio's Avro deserializer, with the caching parser. */
    public static class CachingDeserializer<U> extends AvroKafkaDeserializer<U> {

        private final Wrapped<U> wrapped = new Wrapped<>();

        @Override
        public SchemaParser<Schema, U> schemaParser() {
            return wrapped.around(super.schemaParser());
        }
    }

    /** The caching parser around a serde's own, made anew when configure() makes a new one. */
    static final class Wrapped<U> {

        private SchemaParser<Schema, U> parser;
        private CachingParser<U> cached;

        synchronized SchemaParser<Schema, U> around(SchemaParser<Schema, U> current) {
            if (current != parser) {
                parser = current;
                cached = current == null ? null : new CachingParser<>(current);
            }
            return cached;
        }
    }

    /** A parser that remembers the schema text of each Avro schema object it has seen. */
    static final class CachingParser<U> implements SchemaParser<Schema, U> {

        // Connect's AvroData keeps 1,000 schemas by default; a table's schema changes rarely.
        static final int MAX_SCHEMAS = 1000;

        private final SchemaParser<Schema, U> delegate;
        private final Map<Schema, ParsedSchema<Schema>> dereferenced = new IdentityHashMap<>();
        private final Map<Schema, ParsedSchema<Schema>> plain = new IdentityHashMap<>();

        CachingParser(SchemaParser<Schema, U> delegate) {
            this.delegate = delegate;
        }

        @Override
        public ParsedSchema<Schema> getSchemaFromData(Record<U> data, boolean dereference) {
            Object payload = data.payload();
            if (!(payload instanceof GenericContainer)) {
                return delegate.getSchemaFromData(data, dereference);
            }
            Schema schema = ((GenericContainer) payload).getSchema();
            Map<Schema, ParsedSchema<Schema>> cache = dereference ? dereferenced : plain;
            synchronized (cache) {
                ParsedSchema<Schema> parsed = cache.get(schema);
                if (parsed == null) {
                    if (cache.size() >= MAX_SCHEMAS) {
                        cache.clear();
                    }
                    parsed = delegate.getSchemaFromData(data, dereference);
                    cache.put(schema, parsed);
                }
                return parsed;
            }
        }

        @Override
        public ParsedSchema<Schema> getSchemaFromData(Record<U> data) {
            return delegate.getSchemaFromData(data);
        }

        @Override
        public String artifactType() {
            return delegate.artifactType();
        }

        @Override
        public Schema parseSchema(byte[] rawSchema, Map<String, ParsedSchema<Schema>> references) {
            return delegate.parseSchema(rawSchema, references);
        }

        @Override
        public ParsedSchema<Schema> getSchemaFromLocation(String location) {
            return delegate.getSchemaFromLocation(location);
        }

        @Override
        public boolean supportsExtractSchemaFromData() {
            return delegate.supportsExtractSchemaFromData();
        }

        @Override
        public boolean supportsGetSchemaFromLocation() {
            return delegate.supportsGetSchemaFromLocation();
        }
    }
}
