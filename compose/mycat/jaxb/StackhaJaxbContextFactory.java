// A JAXB context factory for MyCat 1.6 on Java 17 with Debian's JAXB reference implementation
// (libjaxb-java). Selected with -Djavax.xml.bind.JAXBContextFactory=StackhaJaxbContextFactory.
//
// Why: MyCat's ZooKeeper mode writes conf/*.xml through a Marshaller and sets the JDK-internal
// property name "com.sun.xml.internal.bind.xmlHeaders" (the JAXB that Java 8 bundled). The
// reference implementation calls the same property "com.sun.xml.bind.xmlHeaders" and rejects the
// internal name with a PropertyException, after which MyCat logs success and silently keeps its
// old local files. This factory hands out the reference implementation's contexts unchanged,
// except that their marshallers accept the internal name and pass it on under the public one.
//
// Compiled during the MyCat image build (compose/mycat/Dockerfile); written for stackha.

import java.io.File;
import java.io.IOException;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.HashMap;
import java.util.Map;

import javax.xml.bind.Binder;
import javax.xml.bind.JAXBContext;
import javax.xml.bind.JAXBContextFactory;
import javax.xml.bind.JAXBException;
import javax.xml.bind.JAXBIntrospector;
import javax.xml.bind.Marshaller;
import javax.xml.bind.SchemaOutputResolver;
import javax.xml.bind.Unmarshaller;

public final class StackhaJaxbContextFactory implements JAXBContextFactory {
    static final String INTERNAL_HEADERS = "com.sun.xml.internal.bind.xmlHeaders";
    static final String PUBLIC_HEADERS = "com.sun.xml.bind.xmlHeaders";

    @Override
    public JAXBContext createContext(Class<?>[] classes, Map<String, ?> properties)
            throws JAXBException {
        return new Mapped(com.sun.xml.bind.v2.ContextFactory.createContext(classes, copy(properties)));
    }

    @Override
    public JAXBContext createContext(String contextPath, ClassLoader classLoader,
                                     Map<String, ?> properties) throws JAXBException {
        return new Mapped(com.sun.xml.bind.v2.ContextFactory.createContext(
                contextPath, classLoader, copy(properties)));
    }

    private static Map<String, Object> copy(Map<String, ?> properties) {
        return properties == null ? new HashMap<>() : new HashMap<>(properties);
    }

    /** The reference implementation's context; only its marshallers are wrapped. */
    static final class Mapped extends JAXBContext {
        private final JAXBContext real;

        Mapped(JAXBContext real) {
            this.real = real;
        }

        @Override
        public Marshaller createMarshaller() throws JAXBException {
            Marshaller marshaller = real.createMarshaller();
            return (Marshaller) Proxy.newProxyInstance(
                    Marshaller.class.getClassLoader(), new Class<?>[] {Marshaller.class},
                    new RenamingHandler(marshaller));
        }

        @Override
        public Unmarshaller createUnmarshaller() throws JAXBException {
            return real.createUnmarshaller();
        }

        @Override
        @SuppressWarnings("deprecation")
        public javax.xml.bind.Validator createValidator() throws JAXBException {
            return real.createValidator();
        }

        @Override
        public <T> Binder<T> createBinder(Class<T> domType) {
            return real.createBinder(domType);
        }

        @Override
        public JAXBIntrospector createJAXBIntrospector() {
            return real.createJAXBIntrospector();
        }

        @Override
        public void generateSchema(SchemaOutputResolver resolver) throws IOException {
            real.generateSchema(resolver);
        }
    }

    /** Passes every call on; setProperty/getProperty with the internal name use the public. */
    static final class RenamingHandler implements InvocationHandler {
        private final Marshaller real;

        RenamingHandler(Marshaller real) {
            this.real = real;
        }

        @Override
        public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
            String name = method.getName();
            if (args != null && args.length >= 1 && INTERNAL_HEADERS.equals(args[0])
                    && (name.equals("setProperty") || name.equals("getProperty"))) {
                args = args.clone();
                args[0] = PUBLIC_HEADERS;
            }
            try {
                return method.invoke(real, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        }
    }
}
