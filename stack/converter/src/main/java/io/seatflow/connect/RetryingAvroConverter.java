package io.seatflow.connect;

import io.apicurio.registry.rest.client.exception.RateLimitedClientException;
import io.apicurio.registry.rest.client.exception.RestClientException;
import io.apicurio.registry.rest.v2.beans.Error;
import io.apicurio.registry.utils.converter.AvroConverter;

import java.io.IOException;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.storage.Converter;

/**
 * Apicurio's {@link AvroConverter} (2.6; {@link SchemaCachingAvroConverter}, which writes each schema
 * out once), with the registry's transient failures rethrown as
 * {@link RetriableException}, the only exception Connect's error handler retries (within the
 * connector's {@code errors.retry.timeout}, backing off up to {@code errors.retry.delay.max.ms}).
 *
 * <p>With a cold schema cache, every record of a topic not seen yet needs the registry. Apicurio's
 * own retry ({@code ERCache.retry}) only retries HTTP 429, so a registry that is down or answers
 * 500 fails the task at once. Transient, anywhere in the cause chain:
 * <ul>
 *   <li>a {@link IOException} (connection refused, timeout, reset; also inside an
 *       {@link java.io.UncheckedIOException});</li>
 *   <li>a {@link RateLimitedClientException} (HTTP 429: the client's error handler maps 429 to it);</li>
 *   <li>a {@link RestClientException} whose {@link Error#getErrorCode()} is 408, 429 or 500 and up
 *       (the client puts the HTTP status there, also when the error body is not JSON);</li>
 *   <li>a {@link RestClientException} with no error code but a {@link Error#getName()}: the JDK client
 *       swallows the {@code IOException} of {@code HttpClient.send} and keeps only its simple class name
 *       (no cause), so this is a request that got no answer. {@code InterruptedException} is the one
 *       exception to that: the task is being stopped.</li>
 * </ul>
 * Everything else (an incompatible or invalid schema: 400, 409, 422; 401/403; a bad record) is
 * rethrown unchanged.
 *
 * <p>Configured exactly like the delegate: the {@code key.converter.*} / {@code value.converter.*}
 * sub-configs are passed through as they are.
 */
public class RetryingAvroConverter implements Converter {

    private static final int MAX_CAUSES = 64;

    private final Converter delegate;
    private String part = "value";

    public RetryingAvroConverter() {
        this(new SchemaCachingAvroConverter<>());
    }

    /** For checks: wraps any converter. */
    RetryingAvroConverter(Converter delegate) {
        this.delegate = delegate;
    }

    @Override
    public void configure(Map<String, ?> configs, boolean isKey) {
        this.part = isKey ? "key" : "value";
        delegate.configure(configs, isKey);
    }

    @Override
    public byte[] fromConnectData(String topic, Schema schema, Object value) {
        try {
            return delegate.fromConnectData(topic, schema, value);
        } catch (RuntimeException e) {
            throw translate(e, topic, "serializing");
        }
    }

    @Override
    public byte[] fromConnectData(String topic, Headers headers, Schema schema, Object value) {
        try {
            return delegate.fromConnectData(topic, headers, schema, value);
        } catch (RuntimeException e) {
            throw translate(e, topic, "serializing");
        }
    }

    @Override
    public SchemaAndValue toConnectData(String topic, byte[] value) {
        try {
            return delegate.toConnectData(topic, value);
        } catch (RuntimeException e) {
            throw translate(e, topic, "deserializing");
        }
    }

    @Override
    public SchemaAndValue toConnectData(String topic, Headers headers, byte[] value) {
        try {
            return delegate.toConnectData(topic, headers, value);
        } catch (RuntimeException e) {
            throw translate(e, topic, "deserializing");
        }
    }

    @Override
    public ConfigDef config() {
        return delegate.config();
    }

    @Override
    public String version() {
        return delegate.version();
    }

    @Override
    public void close() throws IOException {
        delegate.close();
    }

    private RuntimeException translate(RuntimeException e, String topic, String action) {
        if (e instanceof RetriableException || !isTransient(e)) {
            return e;
        }
        return new RetriableException("Schema registry unavailable while " + action + " the " + part
                + " of a record of topic '" + topic + "' (" + describe(e) + "); Connect retries it within "
                + "the connector's errors.retry.timeout", e);
    }

    /** True if a failure anywhere in the cause chain is one the registry may not repeat. */
    static boolean isTransient(Throwable error) {
        Set<Throwable> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Throwable t = error; t != null && seen.size() < MAX_CAUSES && seen.add(t); t = t.getCause()) {
            if (t instanceof IOException || t instanceof RateLimitedClientException) {
                return true;
            }
            if (t instanceof RestClientException) {
                Error body = ((RestClientException) t).getError();
                Integer status = body == null ? null : body.getErrorCode();
                if (status != null) {
                    if (status >= 500 || status == 408 || status == 429) {
                        return true;
                    }
                } else if (body != null && body.getName() != null
                        && !"InterruptedException".equals(body.getName())) {
                    return true;
                }
            }
        }
        return false;
    }

    private static String describe(Throwable e) {
        Throwable last = e;
        for (int i = 0; i < MAX_CAUSES && last.getCause() != null && last.getCause() != last; i++) {
            last = last.getCause();
        }
        String message = last.getMessage();
        if (last instanceof RestClientException) {
            Error body = ((RestClientException) last).getError();
            if (body != null) {
                message = (body.getErrorCode() == null ? "no HTTP response" : "HTTP " + body.getErrorCode())
                        + (body.getName() == null ? "" : ", " + body.getName())
                        + (body.getMessage() == null ? "" : ": " + body.getMessage());
            }
        }
        String text = last.getClass().getName() + (message == null ? "" : ": " + message);
        return text.replaceAll("\\s+", " ");
    }
}
