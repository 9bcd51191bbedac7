<?php
namespace Magento\Framework {
    class Phrase {
        private $text; private $arguments;
        public function __construct($text, array $arguments = []) { $this->text = (string) $text; $this->arguments = $arguments; }
        public function render() {
            $text = $GLOBALS['dictionary'][$this->text] ?? $this->text;
            foreach ($this->arguments as $i => $argument) { $text = str_replace('%' . ($i + 1), (string) $argument, $text); }
            return $text;
        }
        public function __toString() { return $this->render(); }
    }
    class DataObject {
        protected $_data;
        public function __construct(array $data = []) { $this->_data = $data; }
        public function getData($key = '') { return $key === '' ? $this->_data : ($this->_data[$key] ?? null); }
        public function getDataByKey($key) { return $this->_data[$key] ?? null; }
    }
    interface UrlInterface { public function getUrl($routePath = null, $routeParams = null); }
}
namespace Magento\Framework\Exception { class LocalizedException extends \Exception { public function __construct(\Magento\Framework\Phrase $phrase) { parent::__construct($phrase->render()); } } }
namespace Magento\Framework\Event {
    interface ObserverInterface { public function execute(Observer $observer); }
    class Observer extends \Magento\Framework\DataObject { public function getEvent() { return $this->_data['event']; } }
    class Event extends \Magento\Framework\DataObject {}
}
namespace Magento\Framework\App\Config { interface ScopeConfigInterface { public function getValue($path, $scopeType = 'default', $scopeCode = null); public function isSetFlag($path, $scopeType = 'default', $scopeCode = null); } }
namespace Magento\Framework\Encryption { interface EncryptorInterface { public function decrypt($data); } }
namespace Magento\Store\Model { interface ScopeInterface { const SCOPE_STORE = 'store'; } }
namespace Magento\Quote\Api\Data { interface PaymentInterface { const KEY_ADDITIONAL_DATA = 'additional_data'; } }
namespace Magento\Payment\Model { interface InfoInterface { public function getAdditionalInformation($key = null); public function setAdditionalInformation($key, $value = null); } }
namespace Magento\Payment\Observer {
    abstract class AbstractDataAssignObserver implements \Magento\Framework\Event\ObserverInterface {
        const METHOD_CODE = 'method'; const MODEL_CODE = 'payment_model'; const DATA_CODE = 'data';
        protected function readDataArgument(\Magento\Framework\Event\Observer $observer) { return $observer->getEvent()->getDataByKey(self::DATA_CODE); }
        protected function readPaymentModelArgument(\Magento\Framework\Event\Observer $observer) { return $observer->getEvent()->getDataByKey(self::MODEL_CODE); }
    }
}
namespace Magento\Payment\Gateway\Validator {
    interface ResultInterface { public function isValid(); public function getFailsDescription(); public function getErrorCodes(); }
    class Result implements ResultInterface {
        private $valid; private $fails; private $codes;
        public function __construct($isValid, array $failsDescription = [], array $errorCodes = []) { $this->valid = (bool) $isValid; $this->fails = $failsDescription; $this->codes = $errorCodes; }
        public function isValid() { return $this->valid; }
        public function getFailsDescription() { return $this->fails; }
        public function getErrorCodes() { return $this->codes; }
    }
    class ResultInterfaceFactory { public function create(array $data = []) { return new Result($data['isValid'], $data['failsDescription'] ?? [], $data['errorCodes'] ?? []); } }
    interface ValidatorInterface { public function validate(array $validationSubject); }
    abstract class AbstractValidator implements ValidatorInterface {
        private $resultInterfaceFactory;
        public function __construct(ResultInterfaceFactory $resultFactory) { $this->resultInterfaceFactory = $resultFactory; }
        protected function createResult($isValid, array $fails = [], array $errorCodes = []) {
            return $this->resultInterfaceFactory->create(['isValid' => (bool) $isValid, 'failsDescription' => $fails, 'errorCodes' => $errorCodes]);
        }
    }
}
namespace Magento\Payment\Gateway\Request { interface BuilderInterface { public function build(array $buildSubject); } }
namespace Magento\Payment\Gateway\Command { class CommandException extends \Magento\Framework\Exception\LocalizedException {} }
namespace Magento\Payment\Gateway\Data { class PaymentDataObject { private $payment; public function __construct($payment) { $this->payment = $payment; } public function getPayment() { return $this->payment; } } }
namespace Magento\Payment\Gateway\Helper { class SubjectReader { public static function readPayment(array $subject) { return $subject['payment']; } } }
namespace Magento\Sales\Model {
    class Order {
        public function getStoreId() { return 1; }
        public function getIncrementId() { return '000000042'; }
        public function getBaseCurrencyCode() { return 'EUR'; }
        public function getBaseGrandTotal() { return 12.5; }
        public function getCustomerEmail() { return 'kunde@example.org'; }
        public function getBillingAddress() { return new class { public function getCountryId() { return 'DE'; } }; }
    }
}
namespace Magento\Sales\Model\Order {
    class Payment implements \Magento\Payment\Model\InfoInterface {
        private $info = [];
        public function getAdditionalInformation($key = null) { return $key === null ? $this->info : ($this->info[$key] ?? null); }
        public function setAdditionalInformation($key, $value = null) { $this->info[$key] = $value; return $this; }
        public function getOrder() { return new \Magento\Sales\Model\Order(); }
    }
}
namespace {
    function __($text, ...$arguments) { return new \Magento\Framework\Phrase($text, $arguments); }
    [$root, $locale, $vendor, $method, $casesFile] = array_slice($argv, 1, 5);
    $observers = json_decode($argv[6], true);
    $validator = $argv[7];
    set_error_handler(static function ($no, $msg, $file, $line) { $GLOBALS['errors'][] = $msg . ' at ' . basename($file) . ':' . $line; return true; });
    $GLOBALS['errors'] = [];
    $GLOBALS['dictionary'] = [];
    $csv = fopen($root . '/i18n/' . $locale . '.csv', 'r');
    while (($row = fgetcsv($csv, 0, ',', '"', '\\')) !== false) { $GLOBALS['dictionary'][$row[0]] = $row[1]; }
    spl_autoload_register(static function ($class) use ($root, $vendor) {
        $prefix = $vendor . '\\Payment\\';
        if (strpos($class, $prefix) === 0) { require_once $root . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php'; }
    });
    $config = new class implements \Magento\Framework\App\Config\ScopeConfigInterface {
        public function getValue($path, $scopeType = 'default', $scopeCode = null) { return ['general/locale/code' => 'de_DE'][$path] ?? (substr($path, -15) === '/payment_action' ? 'authorize' : ''); }
        public function isSetFlag($path, $scopeType = 'default', $scopeCode = null) { return false; }
    };
    $encryptor = new class implements \Magento\Framework\Encryption\EncryptorInterface { public function decrypt($data) { return $data; } };
    $urls = new class implements \Magento\Framework\UrlInterface { public function getUrl($routePath = null, $routeParams = null) { return 'https://shop.example/' . $routePath; } };
    $out = [];
    foreach (json_decode(file_get_contents($casesFile), true) as $name => $case) {
        $payment = new \Magento\Sales\Model\Order\Payment();
        // Adapter::assignData(): payment_method_assign_data_<code> with the checkout's data
        $data = new \Magento\Framework\DataObject(['method' => $method, 'additional_data' => $case]);
        $event = new \Magento\Framework\Event\Event(['method' => null, 'payment_model' => $payment, 'data' => $data]);
        foreach ($observers as $observerClass) { (new $observerClass())->execute(new \Magento\Framework\Event\Observer(['event' => $event])); }
        $record = ['stored' => $payment->getAdditionalInformation(), 'refused' => null, 'payload' => null];
        // Adapter::validate(): the "global" validator, its fails joined into one LocalizedException
        if ($validator !== '') {
            $result = (new $validator(new \Magento\Payment\Gateway\Validator\ResultInterfaceFactory()))->validate(['payment' => $payment, 'storeId' => 1]);
            if (!$result->isValid()) { $record['refused'] = implode("\n", $result->getFailsDescription()); }
        }
        if ($record['refused'] === null) {
            $builderClass = $vendor . '\\Payment\\Gateway\\Request\\CreatePaymentBuilder';
            $configClass = $vendor . '\\Payment\\Model\\Config';
            $builder = new $builderClass(new $configClass($config, $encryptor), $urls);
            try {
                $record['payload'] = $builder->build(['payment' => new \Magento\Payment\Gateway\Data\PaymentDataObject($payment)])['payload'];
            } catch (\Magento\Payment\Gateway\Command\CommandException $e) {
                $record['refused_by_builder'] = $e->getMessage();
            }
        }
        $out[$name] = $record;
    }
    echo json_encode(['cases' => $out, 'errors' => $GLOBALS['errors']], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
}
